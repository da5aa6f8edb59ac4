"""Each downstream head and loss on a tiny VL-BERT: shapes, gradients reaching head and backbone, the
loss falling over a few steps on a toy batch, and the head learning-rate groups."""

import pytest
import torch
import torch.nn.functional as F

from vlengine.metrics.vqa import AnswerVocab
from vlengine.models import CSSBert, VLBert, VLConfig
from vlengine.models.heads import AnswerSlotHead, PooledPairClassifier
from vlengine.tasks.downstream import (AnswerModel, GqaDataset, Nlvr2Dataset, Nlvr2Model, RetrievalDataset,
                                       RetrievalModel, VqaDataset, collate_downstream, head_lr_param_groups)
from vlengine.tasks.downstream.losses import soft_score_bce

from downstream_files import gqa_set, karpathy_set, nlvr2_set, region_store, tokenizer, vqa_set


def tiny_backbone(tok, cls=VLBert, seed=0):
    torch.manual_seed(seed)
    config = VLConfig.tiny(vocab_size=tok.vocab_size, hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0)
    return cls(config)


def train_steps(model, batch, steps=12, lr=1e-3):
    opt = torch.optim.AdamW(head_lr_param_groups(model, lr, head_lr_multiplier=1.0))
    losses = []
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    return losses, out


def assert_grads(model):
    head = [p.grad for p in model.head.parameters()] if hasattr(model, "head") else []
    assert all(g is not None and torch.isfinite(g).all() for g in head)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.encoder.parameters())


def test_soft_score_bce_is_sum_over_answers_mean_over_rows(rng):
    logits = torch.randn(4, 7, generator=rng, requires_grad=True)
    scores = torch.rand(4, 7, generator=rng)
    expected = F.binary_cross_entropy_with_logits(logits, scores, reduction="none").sum(1).mean()
    torch.testing.assert_close(soft_score_bce(logits, scores), expected)
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        soft_score_bce(logits, scores + 1)
    with pytest.raises(ValueError, match="logits' shape"):
        soft_score_bce(logits, scores[:, :3])


@pytest.fixture
def vqa_batch(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042", "COCO_val2014_000000000007"])
    aset = vqa_set(tmp_path, [(420, 42, "What color is the dog?", ["red"] * 7 + ["blue"] * 3),
                              (421, 42, "How many dogs are there?", ["two"] * 6 + ["one"] * 4),
                              (70, 7, "Is it raining?", ["no"] * 10), (71, 7, "What color is the cat?", ["blue"] * 10)])
    vocab = AnswerVocab(["red", "blue", "2", "1", "no", "yes"])
    return tok, aset, store, vocab


@pytest.mark.parametrize("head", ["answer_slot", "pooled_mlp"])
def test_vqa_heads_learn_the_soft_targets(vqa_batch, head):
    tok, aset, store, vocab = vqa_batch
    ds = VqaDataset(aset, store, tok, vocab, answer_slot=head == "answer_slot")
    batch = collate_downstream([ds[i] for i in range(len(ds))], num_answers=len(vocab))
    model = AnswerModel(tiny_backbone(tok), len(vocab), head=head)
    assert isinstance(model.head, AnswerSlotHead) == (head == "answer_slot")
    assert model.logits(batch).shape == (4, len(vocab))
    losses, out = train_steps(model, batch, steps=25, lr=2e-3)
    assert_grads(model)
    assert losses[-1] < 0.5 * losses[0], losses
    assert set(out.metrics) == {"vqa_loss", "vqa_score"}
    # after training, every question's argmax is one of its own answers
    scores = batch.extras["answer_scores"]
    assert (scores[torch.arange(4), model.predict(batch)] > 0.5).all()


def test_answer_slot_transform_starts_from_the_mlm_head(tmp_path):
    from vlengine.models.heads import MaskedLMHead

    tok = tokenizer(tmp_path)
    backbone = tiny_backbone(tok)
    mlm = MaskedLMHead(backbone.config, backbone.embeddings.word_embeddings)
    torch.nn.init.normal_(mlm.transform.dense.weight)
    model = AnswerModel(backbone, 5, head="answer_slot")
    model.init_transform_from_mlm(mlm)
    assert torch.equal(model.head.transform.dense.weight, mlm.transform.dense.weight)
    assert model.head.transform.dense.weight.data_ptr() != mlm.transform.dense.weight.data_ptr()   # a copy
    with pytest.raises(ValueError, match="only the answer_slot head"):
        AnswerModel(backbone, 5, head="pooled_mlp").init_transform_from_mlm(mlm)


def test_answer_slot_head_needs_the_slot(vqa_batch):
    tok, aset, store, vocab = vqa_batch
    ds = VqaDataset(aset, store, tok, vocab, answer_slot=False)
    batch = collate_downstream([ds[0]], num_answers=len(vocab))
    with pytest.raises(ValueError, match="answer_slot=True"):
        AnswerModel(tiny_backbone(tok), len(vocab), head="answer_slot").logits(batch)
    with pytest.raises(ValueError, match="answer head must be one of"):
        AnswerModel(tiny_backbone(tok), len(vocab), head="cls")


def test_gqa_cross_entropy(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["n1", "n2"])
    aset = gqa_set(tmp_path, {"1": ("n1", "What color is the cat?", "red"), "2": ("n2", "Is it a dog?", "no"),
                              "3": ("n2", "What is it?", "horse"), "4": ("n1", "Is it a cat?", "yes")})
    vocab = AnswerVocab.from_strings(["red", "no", "yes"])
    ds = GqaDataset(aset, store, tok, vocab, answer_slot=False)
    batch = collate_downstream([ds[i] for i in range(4)], num_answers=len(vocab))
    model = AnswerModel(tiny_backbone(tok), len(vocab), head="pooled_mlp", loss="ce", task="gqa")
    losses, out = train_steps(model, batch, steps=30)
    assert losses[-1] < 0.5 * losses[0] and "gqa_acc" in out.metrics
    # the out-of-vocabulary answer ("horse") is skipped, not a class
    preds = model.predict(batch).tolist()
    assert [vocab.answers[p] for p in (preds[0], preds[1], preds[3])] == ["red", "no", "yes"]


def test_nlvr2_pair_head(tmp_path):
    tok = tokenizer(tmp_path)
    names = [f"dev-{s}-{p}-img{k}" for s in (1, 2) for p in (0, 1) for k in (0, 1)]
    store = region_store(tmp_path, names)
    aset = nlvr2_set(tmp_path, [("dev-1-0-0", "The left image has more birds.", "True"),
                                ("dev-1-1-0", "The left image has more birds.", "False"),
                                ("dev-2-0-0", "There are two dogs.", "False"),
                                ("dev-2-1-0", "There are two dogs.", "True")])
    ds = Nlvr2Dataset(aset, store, tok)
    batch = collate_downstream([ds[i] for i in range(4)])
    model = Nlvr2Model(tiny_backbone(tok))
    assert isinstance(model.head, PooledPairClassifier) and model.logits(batch).shape == (4, 2)
    losses, out = train_steps(model, batch, steps=30)
    assert_grads(model)
    assert losses[-1] < 0.5 * losses[0], losses
    assert model.predict(batch).tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="two rows per example"):
        model.head(torch.zeros(3, model.backbone.config.hidden_size))


def retrieval_batch(tmp_path, tok):
    names = [f"{1000 + i}" for i in range(4)]
    store = region_store(tmp_path, names)
    texts = ["a red cat.", "two dogs.", "a man riding a horse.", "a blue bird."]
    caps = {f"{n}.jpg": [c] for n, c in zip(names, texts)}
    caps["1001.jpg"].append("dogs sitting on grass.")      # two captions of one image: never each other's negative
    ds = RetrievalDataset(karpathy_set(tmp_path, caps), store, tok)
    return ds, collate_downstream([ds[i] for i in range(len(ds))])


@pytest.mark.parametrize("objective, negatives", [("itm", "random"), ("itm", "hard"), ("contrastive", "hard"),
                                                  ("both", "hard")])
def test_retrieval_objectives(tmp_path, objective, negatives):
    tok = tokenizer(tmp_path)
    ds, batch = retrieval_batch(tmp_path, tok)
    model = RetrievalModel(tiny_backbone(tok), objective=objective, negatives=negatives, hard_candidates=2)
    torch.manual_seed(0)
    losses, out = train_steps(model, batch, steps=15)
    assert losses[-1] < losses[0], losses
    expected = {"itm": {"itm_loss", "itm_acc"}, "contrastive": {"contrastive_loss"},
                "both": {"itm_loss", "itm_acc", "contrastive_loss"}}[objective]
    assert set(out.metrics) == expected
    grads = [p.grad for p in (model.itm if objective != "contrastive" else model.projection).parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.embed_text(batch).shape == (5, model.backbone.config.contrastive_dim)


def test_retrieval_negatives_never_pair_an_image_with_its_own_caption(tmp_path):
    tok = tokenizer(tmp_path)
    ds, batch = retrieval_batch(tmp_path, tok)
    model = RetrievalModel(tiny_backbone(tok), negatives="hard", hard_candidates=3)
    image_of = batch.extras["image_index"]
    allowed = image_of[:, None] != image_of[None, :]
    for negatives in ("random", "hard"):
        model.negatives = negatives
        for _ in range(5):
            neg, has = model._pick_negatives(batch, allowed, None, None)
            assert has.all() and (image_of[neg] != image_of).all()
            neg, has = model._pick_negatives(batch, allowed.T, None, None, images_side=True)
            assert has.all() and (image_of[neg] != image_of).all()


def test_retrieval_on_css_bert_uses_its_projection(tmp_path):
    tok = tokenizer(tmp_path)
    ds, batch = retrieval_batch(tmp_path, tok)
    model = RetrievalModel(tiny_backbone(tok, CSSBert), objective="contrastive")
    assert model.projection is None
    model.loss(batch).loss.backward()
    assert model.backbone.projection.text.weight.grad.abs().sum() > 0


def test_head_learning_rate_multiplier(tmp_path):
    tok = tokenizer(tmp_path)
    model = AnswerModel(tiny_backbone(tok), 5, head="pooled_mlp")
    groups = head_lr_param_groups(model, 1e-4, head_lr_multiplier=10.0, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert by_name["head"]["lr"] == pytest.approx(1e-3) and by_name["backbone"]["lr"] == pytest.approx(1e-4)
    assert by_name["head_no_decay"]["weight_decay"] == 0.0 and by_name["head"]["weight_decay"] == 0.01
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for g in groups if g["name"].startswith("head") for p in g["params"]} == head_ids
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # a LambdaLR schedule keeps the ratio
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    opt.step()
    sched.step()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["head"] == pytest.approx(0.5e-3) and lrs["backbone_no_decay"] == pytest.approx(0.5e-4)
    with pytest.raises(ValueError, match="no parameter outside"):
        head_lr_param_groups(model.backbone, 1e-4, backbone_prefix="")
