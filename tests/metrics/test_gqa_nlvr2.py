"""GQA exact match and NLVR2 accuracy/consistency on hand-worked cases (official eval rules)."""

import json

import pytest

from vlengine.metrics.gqa import gqa_accuracy, read_predictions, to_submission
from vlengine.metrics.nlvr2 import nlvr2_metrics, read_predictions_csv, sentence_key, write_predictions_csv


def gqa_question(answer, structural, semantic="rel", balanced=True):
    return {"imageId": "n1", "question": "q?", "answer": answer, "isBalanced": balanced,
            "types": {"structural": structural, "semantic": semantic, "detailed": "x"}}


def test_gqa_exact_match_over_balanced_questions():
    questions = {"1": gqa_question("yes", "verify"), "2": gqa_question("red", "query", "attr"),
                 "3": gqa_question("no", "logical", balanced=False), "4": gqa_question("left", "choose")}
    preds = {"1": "yes", "2": "Red", "4": "left"}  # "Red" != "red": no normalisation; "3" is not balanced
    out = gqa_accuracy(preds, questions)
    assert out["accuracy"] == pytest.approx(200 / 3) and out["count"] == 3
    assert out["binary"] == 100.0 and out["open"] == 0.0
    assert out["perStructuralType"] == {"verify": 100.0, "query": 0.0, "choose": 100.0}
    assert out["perSemanticType"] == {"rel": 100.0, "attr": 0.0}
    with pytest.raises(ValueError, match="1 balanced questions have no prediction"):
        gqa_accuracy({"1": "yes", "2": "red"}, questions)


def test_gqa_submission_round_trip(tmp_path):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(to_submission({"201": "yes", "7": "cat"})))
    assert read_predictions(str(path)) == {"201": "yes", "7": "cat"}
    path.write_text(json.dumps([{"questionId": "1", "answer": "yes"}]))
    with pytest.raises(ValueError, match="entry 0 is not"):
        read_predictions(str(path))


def test_nlvr2_accuracy_and_consistency():
    examples = [{"identifier": i, "label": l} for i, l in [
        ("dev-1-0-0", "True"), ("dev-1-1-0", "False"), ("dev-1-2-0", "True"),   # sentence dev-1--0
        ("dev-1-0-1", "False"), ("dev-1-1-1", "True"),                           # sentence dev-1--1
        ("dev-2-0-0", "True")]]                                                  # sentence dev-2--0
    preds = {"dev-1-0-0": "true", "dev-1-1-0": "False", "dev-1-2-0": "False",   # one wrong: dev-1--0 inconsistent
             "dev-1-0-1": False, "dev-1-1-1": "TRUE", "dev-2-0-0": True}
    out = nlvr2_metrics(preds, examples)
    assert out["accuracy"] == pytest.approx(5 / 6) and out["consistency"] == pytest.approx(2 / 3)
    assert out["count"] == 6 and out["sentences"] == 3
    del preds["dev-2-0-0"]
    with pytest.raises(ValueError, match="1 examples have no prediction"):
        nlvr2_metrics(preds, examples)


def test_nlvr2_sentence_key_blanks_the_pair_field():
    assert sentence_key("test1-850-3-2") == "test1-850--2"
    with pytest.raises(ValueError, match="not split-set-pair-sentence"):
        sentence_key("dev-1-0")


def test_nlvr2_prediction_csv_round_trip(tmp_path):
    path = str(tmp_path / "pred.csv")
    write_predictions_csv(path, {"dev-1-0-0": True, "dev-1-1-0": "false"})
    assert open(path).read() == "dev-1-0-0,True\ndev-1-1-0,False\n"
    assert read_predictions_csv(path) == {"dev-1-0-0": "True", "dev-1-1-0": "False"}
    with pytest.raises(ValueError, match="dev-9-0-0 is 'maybe'"):
        write_predictions_csv(path, {"dev-9-0-0": "maybe"})
