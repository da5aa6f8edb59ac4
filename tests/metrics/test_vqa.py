"""VQA accuracy, normalisation, soft targets and answer vocabulary on hand-worked cases.

The expected values are worked out by hand from the official evaluator's rules
(vqaEval.py): normalisation only when the ten answers differ, leave-one-out
mean of min(1, matches / 3), percentages rounded to 2 decimals."""

import json

import numpy as np
import pytest

from vlengine.metrics.vqa import (AnswerVocab, leave_one_out_score, question_accuracy, read_results, soft_scores,
                                  to_results, vqa_accuracy)
from vlengine.metrics.vqa_normalize import normalize_answer, process_digit_article, process_punctuation


def ann(qid, answers, answer_type="other", question_type="what is", mc=None):
    return {"question_id": qid, "answer_type": answer_type, "question_type": question_type,
            "multiple_choice_answer": mc if mc is not None else answers[0],
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]}


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_over_ten_answers(matches, expected):
    # 3 matches: 7 subsets keep all 3 (-> 1), 3 subsets keep 2 (-> 2/3): (7 + 2) / 10 = 0.9
    answers = ["cat"] * matches + [f"other{i}" for i in range(10 - matches)]
    assert question_accuracy("cat", answers) == pytest.approx(expected, abs=1e-12)
    assert leave_one_out_score(matches) == pytest.approx(expected, abs=1e-12)


def test_unanimous_answers_are_not_normalised():
    assert question_accuracy("yes", ["yes."] * 10) == 0.0      # "yes." kept as it is
    assert question_accuracy("yes.", ["yes."] * 10) == 1.0
    assert question_accuracy("Yes", ["yes"] * 10) == 0.0       # no lower-casing either
    assert question_accuracy("2", ["two"] * 10) == 0.0
    assert question_accuracy("  yes\n", ["yes"] * 10) == 1.0   # whitespace is always cleaned


def test_answers_that_differ_are_normalised_with_the_prediction():
    assert question_accuracy("yes", ["yes."] * 9 + ["no"]) == 1.0
    assert question_accuracy("Yes", ["yes"] * 9 + ["no"]) == 1.0
    assert question_accuracy("two", ["two"] * 5 + ["2"] * 5) == 1.0   # both sides become "2"
    assert question_accuracy("dog", ["a dog"] * 2 + ["the dog"] + ["cat"] * 7) == pytest.approx(0.9)
    assert question_accuracy("don't", ["dont"] * 3 + ["yes"] * 7) == pytest.approx(0.9)
    assert question_accuracy("2.5", ["2.5"] * 4 + ["2"] * 6) == 1.0
    assert question_accuracy("25", ["2.5"] * 4 + ["2"] * 6) == 0.0    # the decimal point survives
    assert question_accuracy("2", ["2."] * 2 + ["3"] * 8) == pytest.approx(0.6)  # a final period does not


@pytest.mark.parametrize("text, expected", [
    ("2.5", "2.5"), ("2.", "2"), ("dog.", "dog"), ("a.b", "ab"), (".5", ".5"),
    ("1,000", "1000"),            # a comma between digits: every mark is deleted, not spaced
    ("red, white", "red white"),  # mark next to a space: deleted
    ("red,white", "red white"),   # otherwise: replaced by a space
    ("x-ray", "x ray"), ("what?!", "what  "), ("don't", "don't"),
    ("x(-y", "x  y"),             # decided on the input: "(" leaves " -" behind, yet "-" is still spaced
    ("." * 40 + "a", "." * 8 + "a"),  # the evaluator's count=re.UNICODE (32) limit on removed periods
])
def test_process_punctuation(text, expected):
    assert process_punctuation(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Two Dogs", "2 dogs"), ("the one", "1"), ("A dog", "dog"), ("an apple", "apple"), ("none", "0"),
    ("ten", "10"), ("eleven", "eleven"), ("dont know", "don't know"), ("Im", "im"),  # "Im" key never matches
    ("cant  stop", "can't stop"), ("somebody'd", "somebodyd"),
])
def test_process_digit_article(text, expected):
    assert process_digit_article(text) == expected


def test_normalize_answer_chains_all_steps():
    assert normalize_answer(" The Two\tDogs! ") == "2 dogs"
    assert normalize_answer("x - ray") == "x ray"


def test_vqa_accuracy_overall_per_type_rounded():
    anns = [ann(1, ["yes"] * 10, "yes/no", "is the"),
            ann(2, ["2"] * 3 + ["3"] * 7, "number", "how many"),
            ann(3, ["red"] + ["blue"] * 9, "other", "what color"),
            ann(4, ["two"] * 10, "number", "how many")]
    preds = {1: "yes", 2: "2", 3: "red", 4: "2"}
    out = vqa_accuracy(preds, anns)
    # per question: 1.0, 0.9, 0.3, 0.0 (unanimous "two" is not mapped to "2")
    assert out["perQuestion"] == {1: 100.0, 2: 90.0, 3: 30.0, 4: 0.0}
    assert out["overall"] == round(100 * 2.2 / 4, 2) == 55.0
    assert out["perAnswerType"] == {"yes/no": 100.0, "number": 45.0, "other": 30.0}
    assert out["perQuestionType"] == {"is the": 100.0, "how many": 45.0, "what color": 30.0}
    thirds = vqa_accuracy({1: "red", 2: "red"}, [ann(1, ["red"] + ["b"] * 9), ann(2, ["red"] * 2 + ["b"] * 8)])
    assert thirds["overall"] == 45.0 and thirds["perQuestion"] == {1: 30.0, 2: 60.0}
    one_third = vqa_accuracy({1: "x", 2: "x", 3: "x"}, [ann(1, ["x"] * 10), ann(2, ["y"] * 10), ann(3, ["y"] * 10)])
    assert one_third["overall"] == 33.33


def test_vqa_accuracy_needs_exactly_the_annotated_questions():
    anns = [ann(1, ["yes"] * 10), ann(2, ["no"] * 10)]
    with pytest.raises(ValueError, match="1 missing"):
        vqa_accuracy({1: "yes"}, anns)
    with pytest.raises(ValueError, match="1 not annotated"):
        vqa_accuracy({1: "yes", 2: "no", 3: "no"}, anns)
    with pytest.raises(ValueError, match="question 2 is not a string"):
        vqa_accuracy({1: "yes", 2: 3}, anns)


def test_results_file_round_trip(tmp_path):
    path = tmp_path / "res.json"
    path.write_text(json.dumps(to_results({5: "yes", 7: "2"})))
    assert read_results(str(path)) == {5: "yes", 7: "2"}
    path.write_text(json.dumps([{"question_id": 5, "answer": "a"}, {"question_id": 5, "answer": "b"}]))
    with pytest.raises(ValueError, match="question 5 is answered twice"):
        read_results(str(path))


def test_soft_scores_normalise_and_average_leave_one_out():
    assert soft_scores(["two"] * 3 + ["2"] + ["red"] * 6) == pytest.approx({"2": 1.0, "red": 1.0})
    assert soft_scores(["a dog"] * 2 + ["dog"] + ["cat"] * 7) == pytest.approx({"dog": 0.9, "cat": 1.0})
    assert soft_scores(["x"] + ["y"] * 2 + ["z"] * 7) == pytest.approx({"x": 0.3, "y": 0.6, "z": 1.0})


def test_answer_vocab_build_save_load_targets(tmp_path):
    anns = ([ann(q, ["yes"] * 10, mc="Yes") for q in range(3)]          # "Yes" normalises to "yes"
            + [ann(q, ["two"] * 10, mc="two") for q in range(3, 5)]
            + [ann(q, ["2"] * 10, mc="2") for q in range(5, 6)]          # "two" and "2": 3 questions of "2"
            + [ann(q, ["cat"] * 10, mc="cat") for q in range(6, 8)]      # 2 questions: below min_count
            + [ann(0, ["yes"] * 10, mc="yes")])                           # question 0 again: not counted twice
    vocab = AnswerVocab.build(anns, min_count=3)
    assert vocab.answers == ["2", "yes"] and vocab.counts == [3, 3]
    path = vocab.save(str(tmp_path / "answers.json"))
    loaded = AnswerVocab.load(path)
    assert loaded.answers == ["2", "yes"] and loaded.min_count == 3 and len(loaded) == 2
    idx, scores = loaded.targets(["two"] * 2 + ["yes"] * 5 + ["cat"] * 3)
    assert idx.tolist() == [0, 1] and np.allclose(scores, [0.6, 1.0]) and scores.dtype == np.float32
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="bad.json: not a vlengine-vqa-answers file"):
        AnswerVocab.load(str(tmp_path / "bad.json"))


def test_answer_vocab_from_raw_strings():
    vocab = AnswerVocab.from_strings(["no", "yes", "no", "Red", "red", "no"], min_count=1)
    assert vocab.answers == ["no", "Red", "red", "yes"] and vocab.counts == [3, 1, 1, 1]  # no normalisation
    assert AnswerVocab.from_strings(["no", "yes", "no"], min_count=2).answers == ["no"]


def test_matches_the_official_evaluators_output():
    """200 random questions (unanimous and mixed answers drawn from normalisation corners) scored by
    the official vqaEval.py itself; its output is stored beside this test (see _generated_by)."""
    import os
    with open(os.path.join(os.path.dirname(__file__), "vqa_official_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    predictions = {int(q): a for q, a in cases["predictions"].items()}
    out = vqa_accuracy(predictions, cases["annotations"])
    official = cases["official"]
    assert out["overall"] == official["overall"]
    assert out["perAnswerType"] == official["perAnswerType"]
    assert out["perQuestionType"] == official["perQuestionType"]
    assert {str(q): v for q, v in out["perQuestion"].items()} == official["perQuestion"]
    assert len(set(official["perQuestion"].values())) >= 5  # the cases cover many accuracy levels
