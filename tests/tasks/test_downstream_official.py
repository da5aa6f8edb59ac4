"""Predictions gathered by example id -> the official metrics and submission files, on records
converted from the official formats."""

import json

import pytest

from vlengine.metrics.nlvr2 import read_predictions_csv
from vlengine.metrics.vqa import AnswerVocab, read_results
from vlengine.tasks.downstream import GqaDataset, Nlvr2Dataset, VqaDataset
from vlengine.tasks.downstream.official import answers_from_classes, official_metrics, write_submission

from downstream_files import gqa_set, nlvr2_set, region_store, tokenizer, vqa_set


def test_vqa_predictions_to_official_accuracy_and_results(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042"])
    aset = vqa_set(tmp_path, [(420, 42, "What color is the dog?", ["red"] * 7 + ["blue"] * 3),
                              (421, 42, "How many dogs are there?", ["two"] * 2 + ["2"] + ["one"] * 7)])
    vocab = AnswerVocab(["red", "blue", "2", "1"])
    ds = VqaDataset(aset, store, tok, vocab)
    answers = answers_from_classes({420: 1, 421: 2}, vocab)
    assert answers == {420: "blue", 421: "2"}
    # blue: 3 of 10 -> 0.9; "2" matches "two" and "2" after normalisation: 3 -> 0.9
    assert official_metrics("vqa", answers, ds) == {"overall": 90.0, "perAnswerType": {"other": 90.0}}
    path = write_submission("vqa", answers, str(tmp_path / "results.json"))
    assert read_results(path) == answers
    with pytest.raises(ValueError, match="class 7, outside the 4 answers"):
        answers_from_classes({420: 7}, vocab)


def test_gqa_and_nlvr2_files(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["n1", "dev-1-0-img0", "dev-1-0-img1", "dev-1-1-img0", "dev-1-1-img1"])
    gqa = GqaDataset(gqa_set(tmp_path, {"7": ("n1", "Is it a cat?", "yes"), "8": ("n1", "What color?", "red")}),
                     store, tok, AnswerVocab(["yes", "red"]), answer_slot=False)
    metrics = official_metrics("gqa", {"7": "yes", "8": "yes"}, gqa)
    assert metrics["accuracy"] == 50.0
    path = write_submission("gqa", {"7": "yes", "8": "yes"}, str(tmp_path / "gqa.json"))
    assert json.load(open(path)) == [{"questionId": "7", "prediction": "yes"}, {"questionId": "8", "prediction": "yes"}]
    nlvr2 = Nlvr2Dataset(nlvr2_set(tmp_path, [("dev-1-0-0", "Two dogs.", "True"), ("dev-1-1-0", "Two dogs.", "False")]),
                         store, tok)
    metrics = official_metrics("nlvr2", {"dev-1-0-0": 1, "dev-1-1-0": 1}, nlvr2)
    assert metrics["accuracy"] == 0.5 and metrics["consistency"] == 0.0
    path = write_submission("nlvr2", {"dev-1-0-0": 1, "dev-1-1-0": 0}, str(tmp_path / "nlvr2.csv"))
    assert read_predictions_csv(path) == {"dev-1-0-0": "True", "dev-1-1-0": "False"}
