"""SemVLP's image-QA pretraining task (seed 004 sec. 3.1, after LXMERT): the embedded corpus's questions
mixed into the pretraining batches, answered from the pooled output, kept out of ITM, resumable."""

import math
import os

import numpy as np
import pytest
import torch

from vlengine._config import ConfigError
from vlengine.batch import IGNORE_INDEX
from vlengine.data.loading import make_pretrain_loader

from test_recipes import TINY_MODEL, _config

os.environ.setdefault("DS_ACCELERATOR", "cpu")

QA_DATA = {"text_ratio": 0.0, "itm_negative_prob": 0.5, "qa": "corpus", "qa_ratio": 0.5, "qa_batch_size": 3}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=5, num_train=40,
                                 num_heldout=12, num_text_documents=2)


@pytest.fixture(scope="module")
def questions(corpus):
    from vlengine.data.text import load_tokenizer
    from vlengine.training.data_setup import resolve_data
    from vlengine.training.qa_data import load_questions
    from vlengine.training.sections import DataSection

    data = DataSection(corpus=corpus, qa="corpus", qa_ratio=0.5)
    paths = resolve_data(data)
    return load_questions(data, paths, load_tokenizer(paths.vocab), "test"), paths


def _loader(paths, questions, **kw):
    return make_pretrain_loader(paths.train, batch_size=4, itm_negative_prob=0.5, seed=1, questions=questions.dataset,
                                qa_ratio=0.5, qa_batch_size=3, drop_last=True, **kw)


def test_question_rows_are_mixed_in_at_the_ratio_with_their_answers(questions):
    questions, paths = questions
    it = iter(_loader(paths, questions))
    batches = [next(it) for _ in range(4)]
    # 0.5 question batches of 3 rows per caption batch of 4: every other step carries 3 question rows
    assert [b.batch_size for b in batches] == [4, 7, 4, 7]
    for b in batches:
        qa_rows = b.qa_label != IGNORE_INDEX if b.qa_label is not None else torch.zeros(b.batch_size, dtype=torch.bool)
        assert int(qa_rows.sum()) == b.batch_size - 4
        assert bool((b.itm_label[qa_rows] == IGNORE_INDEX).all()) and bool((b.itm_label[~qa_rows] >= 0).all())
        assert bool(b.region_valid[qa_rows].any(1).all())   # question rows carry their image's regions
    # each question row's label is its record's answer class, and its text is the question
    b = batches[1]
    ds = questions.dataset
    tok = ds.tokenizer
    for row in range(4, 7):
        q = int(b.extras["question_index"][row])
        assert ds.labels[q] == int(b.qa_label[row])
        ids = b.input_ids[row][b.text_mask[row]].tolist()
        assert ids == list(tok.encode(ds.annotations[q]["text"], ds.max_text_len).ids)
    assert bool((b.extras["question_index"][:4] == -1).all())
    assert int(b.qa_label[4:].max()) < questions.num_answers


def test_a_resumed_loader_gives_the_same_question_batches(questions):
    questions, paths = questions
    first = iter(_loader(paths, questions))
    for _ in range(3):
        next(first)
    state = first.state_dict()
    expected = [next(first) for _ in range(3)]
    resumed = _loader(paths, questions)
    resumed.load_state_dict(state)
    for a, b in zip(expected, (next(resumed) for _ in range(3))):
        for name in ("input_ids", "itm_label", "qa_label", "region_boxes"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or torch.equal(x, y), name


def test_answer_classes_follow_the_fine_tuning_vocabulary(questions):
    from vlengine.metrics.vqa import AnswerVocab
    questions, _ = questions
    ann = questions.dataset.annotations
    records = [ann[i] for i in range(len(ann))]
    vocab = AnswerVocab.build(records, min_count=1)
    assert questions.answers.answers == vocab.answers
    for r, label in zip(records, questions.dataset.labels):
        assert vocab.answers[label] == r["multiple_choice_answer"]
    assert vocab.label("vqa", {"multiple_choice_answer": "not an answer here"}) == IGNORE_INDEX
    assert vocab.label("vqa", {}) == IGNORE_INDEX


def test_qa_term_trains_the_head_on_question_rows_only_and_itm_skips_them(questions):
    from vlengine.models.config import VLConfig
    from vlengine.models.semvlp import SemVLP
    from vlengine.tasks.semvlp import SemVLPPretraining
    from vlengine.training.recipes import build_masker
    from vlengine.training.sections import MaskingSection
    from vlengine.data.text import load_tokenizer

    questions, paths = questions
    tok = load_tokenizer(paths.vocab)
    torch.manual_seed(0)
    config = VLConfig(vocab_size=tok.vocab_size, hidden_size=32, num_heads=2, intermediate_size=64, num_layers=2,
                      num_region_classes=paths.manifest["classes"], cross_attention_start=1)
    objective = SemVLPPretraining(SemVLP(config), build_masker("semvlp", MaskingSection(), tok),
                                  num_answers=questions.num_answers)
    batch = next(x for x in _loader(paths, questions) if x.qa_label is not None)
    batch = objective.prepare_batch(batch, "single", torch.Generator().manual_seed(0))
    out = objective(batch, "single")
    assert math.isfinite(float(out.metrics["qa_loss"])) and 0.0 <= float(out.metrics["qa_acc"]) <= 1.0
    out.loss.backward()
    assert objective.qa.classifier.weight.grad is not None and objective.qa.classifier.weight.grad.abs().sum() > 0
    # the same batch without its question rows: the QA term is zero and ITM reads the same rows
    captions = batch.qa_label == IGNORE_INDEX
    assert int(captions.sum()) == 4
    itm_rows = batch.image_rows & (batch.itm_label != IGNORE_INDEX)
    assert torch.equal(itm_rows, captions)
    pooled = torch.randn(batch.batch_size, 32, requires_grad=True)
    loss, metrics = objective.qa_term(pooled, torch.full_like(batch.qa_label, IGNORE_INDEX))
    assert float(loss.detach()) == 0.0 and math.isnan(float(metrics["qa_acc"]))


def test_semvlp_pretrains_with_questions_through_deepspeed(corpus, tmp_path):
    from vlengine.training.run import run_pretraining
    cfg = _config(corpus, "semvlp", {}, {}, QA_DATA, tmp_path)
    result = run_pretraining(cfg, log=lambda *_: None)
    assert result.final_step == 4 and all(math.isfinite(x) for x in result.losses)
    assert {"qa_loss", "qa_acc", "itm_loss", "mlm_loss"} <= set(result.last_metrics)


@pytest.mark.parametrize("recipe, data, message", [
    ("vlbert", {"qa": "corpus", "qa_ratio": 1.0}, "data.qa (image-QA pretraining) is a task of recipe semvlp"),
    ("semvlp", {"qa_ratio": 1.0}, "data.qa_ratio 1.0 mixes in questions, but data.qa names none"),
    ("semvlp", {"qa": "corpus", "qa_ratio": -1.0}, "data.qa_ratio must be >= 0"),
])
def test_config_mistakes_are_named(corpus, tmp_path, recipe, data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config(corpus, recipe, {}, {}, data, tmp_path)


def test_a_question_set_of_another_task_or_corpus_is_refused(corpus, tmp_path):
    from vlengine.tasks.downstream.embedded_sets import ensure_embedded_retrieval
    from vlengine.training.run import run_pretraining
    retrieval = ensure_embedded_retrieval(corpus)["train"][0]
    cfg = _config(corpus, "semvlp", {}, {}, {**QA_DATA, "qa": retrieval}, tmp_path)
    with pytest.raises(ConfigError, match="holds task 'retrieval'"):
        run_pretraining(cfg, log=lambda *_: None)
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("train", "vocab.txt"):
        os.symlink(os.path.join(corpus, name), bare / name)
    cfg = _config(str(bare), "semvlp", {}, {}, QA_DATA, tmp_path)
    with pytest.raises(ConfigError, match="downstream/vqa_train.jsonl"):
        run_pretraining(cfg, log=lambda *_: None)
