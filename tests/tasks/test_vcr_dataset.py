"""VCR in the fine-tuning layer: the embedded multiple-choice task in VCR's official format (converted with
--from vcr), the dataset's items and batches (four rows per question, the image once), the scoring
(Q->AR from rationale passes under each answer, the leaderboard CSV) and the model's losses."""

import csv
import json
import os

import numpy as np
import pytest
import torch

from vlengine.batch import IGNORE_INDEX
from vlengine.data import load_tokenizer
from vlengine.data.annotations import open_annotations
from vlengine.data.corpus import build_embedded_corpus
from vlengine.data.corpus.scenes import COLOUR_NAMES
from vlengine.data.store import open_store
from vlengine.models import VLBert, VLConfig
from vlengine.tasks.downstream import VcrDataset, VcrModel, collate_for
from vlengine.tasks.downstream.embedded_vcr import ensure_embedded_vcr
from vlengine.tasks.downstream.score_split import headline, score_split


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=2, num_train=24,
                                 num_heldout=12, num_text_documents=2)


@pytest.fixture(scope="module")
def sets(corpus):
    return ensure_embedded_vcr(corpus)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return load_tokenizer(os.path.join(corpus, "vocab.txt"))


def _words(text: dict) -> str:
    return " ".join(text["words"])


def test_the_questions_are_true_of_their_scene_and_converted_like_a_users_vcr_files(corpus, sets):
    assert ensure_embedded_vcr(corpus) == sets                        # built once
    annotations, store_path = sets["train"]
    store = open_store(store_path)
    records = open_annotations(annotations)
    assert 18 <= len(records) <= 24 and records.task == "vcr"
    rows = [json.loads(line) for line in open(os.path.join(os.path.dirname(annotations), "official", "train.jsonl"))]
    assert [r["annot_id"] for r in rows] == [records[i]["id"] for i in range(len(records))]
    labels_seen = set()
    for index, (row, image) in enumerate(zip(rows, records.image_indices(store)[:, 0])):
        record, scene = records[index], store.image(int(image))
        assert scene["image_id"] + ".jpg" == row["img_fn"]
        d = row["question"][4][0]
        region = d + 1                                               # detection d = store region d + 1
        colour = COLOUR_NAMES[(int(scene["labels"][region]) % 21) // 3]
        assert _words(record["answer_choices"][row["answer_label"]]).endswith(f"is {colour}")
        assert sorted({_words(c).split()[-1] for c in record["answer_choices"]}) == sorted(
            _words(c).split()[-1] for c in record["answer_choices"])  # four different colours
        e = row["rationale_choices"][0][2][0]                        # the rationale's object: another one
        other = COLOUR_NAMES[(int(scene["labels"][e + 1]) % 21) // 3]
        assert e != d and other != colour
        assert _words(record["rationale_choices"][row["rationale_label"]]).endswith(f"which is {other}")
        rationale_colours = [_words(c).split()[-1] for c in record["rationale_choices"]]
        assert len(set(rationale_colours)) == 4 and colour not in rationale_colours   # never the answer's
        # the mention reads as the shape (never the colour) and carries its detection index
        assert record["question"]["regions"][4] == d and record["question"]["words"][4] == row["objects"][d]
        assert colour not in _words(record["question"])
        labels_seen.add(row["answer_label"])
    assert len(labels_seen) > 1


def test_items_hold_four_grounded_rows_and_the_image_once(sets, tokenizer):
    annotations, store = sets["train"]
    data = VcrDataset(annotations, store, tokenizer, ("q_a", "qa_r"), max_text_len=24)
    n = data.questions
    assert len(data) == 2 * n and data.example_id(n) == "qa_r:" + data.example_id(0).split(":", 1)[1]
    batch = collate_for(data)([data[0], data[1], data[n]])
    assert batch.input_ids.shape[0] == 12 and batch.region_features.shape[0] == 3
    assert batch.extras["text_regions"].shape == batch.input_ids.shape
    assert batch.extras["label"].tolist() == [data.label(0), data.label(1), data.label(n)]
    regions = batch.extras["text_regions"][0]
    ids = batch.input_ids[0]
    grounded = regions >= 1
    assert grounded.any() and bool((regions[~grounded] == -1).all())
    # the grounded pieces spell the shape the question mentions
    d = data.record(0)["question"]["regions"][4]
    assert tokenizer.decode(ids[grounded][:len(tokenizer.encode_words([data.record(0)["objects"][d]]).ids)]
                            .tolist()).replace(" ", "") == data.record(0)["objects"][d]
    # QA->R: the gold answer sits in segment A with the question
    qa_r = data[n]
    gold = data.record(n)["answer_choices"][data.record(n)["answer_label"]]
    text_a = tokenizer.decode(qa_r["choices"][0]["input_ids"][qa_r["choices"][0]["token_type_ids"] == 0].tolist())
    assert text_a.replace(" ", "").endswith(_words(gold).replace(" ", ""))
    text_only = VcrDataset(annotations, store, tokenizer, ("q_a",), with_image=False)[0]
    assert "image" not in text_only and all((r["text_regions"] == -1).all() and r["text_only"]
                                            for r in text_only["choices"])


def test_items_are_the_same_with_zero_and_two_loader_workers(sets, tokenizer):
    annotations, store = sets["val"]
    data = VcrDataset(annotations, store, tokenizer)
    serial = list(torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate_for(data)))
    workers = list(torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate_for(data), num_workers=2))
    for a, b in zip(serial, workers):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.extras["text_regions"], b.extras["text_regions"])


def test_bad_settings_are_refused(sets, tokenizer):
    annotations, store = sets["val"]
    with pytest.raises(ValueError, match="sub-tasks"):
        VcrDataset(annotations, store, tokenizer, ("q_a", "q_ar"))
    with pytest.raises(ValueError, match="given_answer"):
        VcrDataset(annotations, store, tokenizer, given_answer=4)
    with pytest.raises(IndexError, match="out of range"):
        VcrDataset(annotations, store, tokenizer)[10_000]


class Oracle(torch.nn.Module):
    """Scores by the extras' labels: right on Q->A, right on QA->R only when the gold answer is given."""

    def __init__(self, data):
        super().__init__()
        self.data = data

    def predict(self, batch):
        out = torch.full((len(batch.extras["label"]), 4), 0.1)
        for row, (index, label) in enumerate(zip(batch.extras["example_index"].tolist(), batch.extras["label"].tolist())):
            out[row, (label + 1) % 4 if index % 3 == 0 else label] = 0.7   # every third question wrong
        return out


def test_scoring_conditions_the_rationales_on_each_answer_and_writes_the_leaderboard_csv(sets, tokenizer, tmp_path):
    annotations, store = sets["val"]
    data = VcrDataset(annotations, store, tokenizer)
    metrics = score_split(Oracle(data), data, "vcr", out_dir=str(tmp_path), name="val", batch_size=5)
    n = data.questions
    wrong = len(range(0, n, 3))
    assert metrics["n"] == n and metrics["q_a_right"] == n - wrong and metrics["qa_r_right"] == n - wrong
    assert metrics["q_ar_right"] == n - wrong            # the same questions are wrong in both
    assert headline("vcr", metrics) == {"vcr_q_a": metrics["q_a"], "vcr_qa_r": metrics["qa_r"],
                                        "vcr_q_ar": metrics["q_ar"]}
    with open(tmp_path / "val_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n and len(rows[0]) == 1 + 4 + 16
    assert rows[1]["annot_id"] == data.variant(("q_a",)).example_id(1)
    with open(tmp_path / "val_metrics.json") as f:
        assert json.load(f)["metrics"]["q_ar"] == metrics["q_ar"]
    only = score_split(Oracle(data), data, "vcr", vcr_subtasks=("q_a",), batch_size=5)
    assert only == {"q_a": metrics["q_a"], "q_a_right": n - wrong, "n": n}


def test_the_loss_skips_unlabelled_questions_and_adds_the_region_class_loss(sets, tokenizer):
    annotations, store = sets["train"]
    data = VcrDataset(annotations, store, tokenizer)
    batch = collate_for(data)([data[i] for i in range(4)])
    torch.manual_seed(0)
    config = VLConfig.tiny(vocab_size=tokenizer.vocab_size, region_feature_size=2048, num_region_classes=126)
    plain = VcrModel(VLBert(config)).eval()          # eval: no dropout, so the two losses compare exactly
    torch.manual_seed(0)
    with_aux = VcrModel(VLBert(config), region_class_weight=0.5).eval()
    assert with_aux.load_state_dict(plain.state_dict(), strict=False).unexpected_keys == []   # the same model + aux head
    out, aux = plain(batch), with_aux(batch)
    assert set(aux.metrics) == {"vcr_loss", "vcr_acc", "vcr_region_class_loss"}
    torch.testing.assert_close(aux.loss, out.loss + 0.5 * aux.metrics["vcr_region_class_loss"])
    aux.loss.backward()
    assert with_aux.region_classes.classifier.weight.grad.abs().sum() > 0
    labels = batch.extras["label"].clone()
    labels[:2] = IGNORE_INDEX
    half = plain(batch.replace(extras={**batch.extras, "label": labels}))
    assert torch.isfinite(half.loss)
    with pytest.raises(ValueError, match="no labelled question"):
        plain(batch.replace(extras={**batch.extras, "label": torch.full_like(labels, IGNORE_INDEX)}))
    assert np.allclose(plain.predict(batch).sum(-1).numpy(), 1.0)
