"""VCR accuracies on hand-worked cases (Q->AR counts a question only when answer and rationale are
both right) and the submission CSV's columns."""

import csv

import numpy as np
import pytest

from vlengine.metrics.vcr import SUBMISSION_COLUMNS, vcr_accuracy, write_submission


def test_q_ar_counts_only_both_right():
    # question 0: both right; 1: answer right, rationale wrong; 2: answer wrong, rationale right; 3: both wrong
    answers = [[.1, .7, .1, .1], [.9, 0, 0, .1], [.3, .2, .4, .1], [0, 0, 1, 0]]
    rationales = [[0, 0, 1, 0], [.5, .4, 0, .1], [0, 0, 0, 1], [1, 0, 0, 0]]
    out = vcr_accuracy(answers, rationales, [1, 0, 0, 3], [2, 1, 3, 2])
    assert (out["q_a_right"], out["qa_r_right"], out["q_ar_right"], out["n"]) == (2, 2, 1, 4)
    assert (out["q_a"], out["qa_r"], out["q_ar"]) == (50.0, 50.0, 25.0)


def test_ties_go_to_the_lowest_index():
    out = vcr_accuracy([[.25] * 4], [[.5, .5, 0, 0]], [0], [1])
    assert (out["q_a_right"], out["qa_r_right"], out["q_ar_right"]) == (1, 0, 0)


@pytest.mark.parametrize("labels", [[4], [-1], [0.5]])
def test_bad_labels_are_refused(labels):
    with pytest.raises(ValueError, match="labels"):
        vcr_accuracy([[1, 0, 0, 0]], [[1, 0, 0, 0]], labels, [0])


def test_submission_has_the_leaderboard_columns(tmp_path):
    assert len(SUBMISSION_COLUMNS) == 1 + 4 + 16
    assert SUBMISSION_COLUMNS[5] == "rationale_conditioned_on_a0_0" and SUBMISSION_COLUMNS[-1] == "rationale_conditioned_on_a3_3"
    rationales = np.arange(32, dtype=float).reshape(2, 4, 4) / 100
    path = write_submission(str(tmp_path / "test.csv"), ["test-0", "test-1"], [[.1, .2, .3, .4]] * 2, rationales)
    rows = list(csv.DictReader(open(path)))
    assert [r["annot_id"] for r in rows] == ["test-0", "test-1"]
    assert float(rows[1]["answer_3"]) == .4 and float(rows[1]["rationale_conditioned_on_a2_1"]) == rationales[1, 2, 1]
    with pytest.raises(ValueError, match="shape"):
        write_submission(str(tmp_path / "bad.csv"), ["a"], [[1, 0, 0, 0]], np.zeros((1, 4)))
