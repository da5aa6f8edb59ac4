"""Retrieval evaluation on a tiny random VL-BERT: full ITM ranking and two-stage re-ranking agree
when k covers every pair; with a small k the ITM passes stay within (images + captions) x k."""

import torch

from vlengine.metrics.retrieval_protocol import retrieval_metrics
from vlengine.models import VLBert, VLConfig
from vlengine.tasks.downstream import RetrievalDataset, RetrievalModel, evaluate_retrieval
from vlengine.tasks.downstream.pairs import pair_batch
from vlengine.tasks.downstream.retrieval_eval import full_itm_scores, sides, top_k_candidates, two_stage_scores

from downstream_files import karpathy_set, region_store, tokenizer

CAPTIONS = ["a red cat.", "two dogs.", "a man riding a horse.", "a blue bird.", "dogs sitting on grass.",
            "a picture of a cat.", "one dog.", "a horse on grass."]


def setup(tmp_path, n_images=6, per_image=2):
    tok = tokenizer(tmp_path)
    names = [str(2000 + i) for i in range(n_images)]
    store = region_store(tmp_path, names + ["9999"])          # the store may hold more images than the split
    caps = {f"{n}.jpg": [CAPTIONS[(i * per_image + j) % len(CAPTIONS)] for j in range(per_image)]
            for i, n in enumerate(names)}
    ds = RetrievalDataset(karpathy_set(tmp_path, caps), store, tok)
    torch.manual_seed(0)
    # visual LayerNorms start at 1 (VL-BERT's 0 would make a random model blind to the regions)
    config = VLConfig.tiny(vocab_size=tok.vocab_size, visual_ln_init=1.0)
    model = RetrievalModel(VLBert(config), objective="both").eval()
    return ds, model


class CountingITM(torch.nn.Module):
    """Wraps the ITM head and counts the (caption, image) rows it scores."""

    def __init__(self, head):
        super().__init__()
        self.head, self.rows = head, 0

    def forward(self, pooled):
        self.rows += pooled.shape[0]
        return self.head(pooled)


def test_full_ranking_equals_pairwise_forwards(tmp_path):
    ds, model = setup(tmp_path, n_images=3)
    texts, images = sides(ds)
    scores = full_itm_scores(model, texts, images, batch_size=4)
    assert scores.shape == (6, 3)
    # one pair at a time, collated from the dataset's own items, gives the same scores
    for i in (0, 3, 5):
        for j in range(3):
            one = pair_batch(texts, torch.tensor([i]), images, torch.tensor([j]))
            torch.testing.assert_close(model.itm_scores(one)[0], scores[i, j], atol=1e-5, rtol=1e-5)


def test_two_stage_with_k_all_equals_full_ranking(tmp_path):
    ds, model = setup(tmp_path)
    model.itm = CountingITM(model.itm)
    n_text, n_image = len(ds), ds.num_images
    out = evaluate_retrieval(model, ds, mode="both", k=max(n_text, n_image), batch_size=5)
    assert out["captions"] == 12 and out["images"] == 6
    assert out["two_stage"] == out["full"]                       # same scores, same recalls
    assert out["full_itm_pairs"] == out["two_stage_itm_pairs"] == n_text * n_image
    assert model.itm.rows == 2 * n_text * n_image
    texts, images = sides(ds)
    # other batch sizes pad differently: the same scores up to float rounding
    full = full_itm_scores(model, texts, images, batch_size=7)
    torch.testing.assert_close(two_stage_scores(model, texts, images, k=n_text, batch_size=3)["scores"], full,
                               atol=1e-5, rtol=1e-5)
    # (recalls compared at the evaluation's own batch size: a random model's near-ties may flip with rounding)
    full = full_itm_scores(model, texts, images, batch_size=5)
    assert out["full"] == retrieval_metrics(scores=full, text_to_image=ds.text_to_image)
    assert set(out["full"]) == {"text_to_image", "image_to_text", "text_to_image_mean", "image_to_text_mean",
                                "r_mean", "rsum"}


def test_two_stage_pass_count_is_bounded(tmp_path):
    ds, model = setup(tmp_path)
    model.itm = CountingITM(model.itm)
    texts, images = sides(ds)
    k = 2
    two = two_stage_scores(model, texts, images, k=k, batch_size=4)
    bound = (len(ds) + ds.num_images) * k
    assert model.itm.rows == two["itm_pairs"] <= bound < len(ds) * ds.num_images
    scored = torch.isfinite(two["scores"])
    assert int(scored.sum()) == two["itm_pairs"]
    # each caption's k nearest images (by the dual encoder) were re-ranked, and each image's k nearest captions
    sim = two["text_emb"] @ two["image_emb"].T
    assert scored.gather(1, sim.topk(k, dim=1).indices).all()
    assert scored.T.gather(1, sim.T.topk(k, dim=1).indices).all()
    out = evaluate_retrieval(model, ds, mode="two_stage", k=k)
    assert "full" not in out and out["two_stage_itm_pairs"] <= bound and "dual_encoder" in out


def test_candidates_are_deduplicated():
    text = torch.eye(4)[[0, 1, 2, 3, 0]]
    image = torch.eye(4)
    pairs = top_k_candidates(text, image, k=1)
    # caption -> its image and image -> its best caption coincide: 5 pairs, not 5 + 4
    assert sorted(map(tuple, pairs.tolist())) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 0)]
