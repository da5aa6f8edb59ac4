"""VCR's three accuracies and the leaderboard's submission CSV.

Q->A: the top-scored of the four answers is the labelled one. QA->R: with the gold answer given, the
top-scored of the four rationales is the labelled one. Q->AR: both right for the same question (the
headline number: a question counts only when its answer and its rationale are right). All three are
exact counts over the questions, reported as percentages with the counts beside them.

The test submission (one row per question): ``annot_id``, ``answer_0..3`` (answer probabilities) and
``rationale_conditioned_on_a{i}_{j}`` for i, j in 0..3 (rationale j's probability when answer i is
taken as given: the test split has no gold answer, so all four conditionings are submitted).
"""

from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

NUM_CHOICES = 4
SUBMISSION_COLUMNS = (["annot_id"] + [f"answer_{i}" for i in range(NUM_CHOICES)]
                      + [f"rationale_conditioned_on_a{i}_{j}" for i in range(NUM_CHOICES) for j in range(NUM_CHOICES)])


def _scores(name: str, value, shape: tuple) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"VCR {name}: expected shape {shape}, got {arr.shape}")
    return arr


def _labels(name: str, value, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer) or ((arr < 0) | (arr >= NUM_CHOICES)).any():
        raise ValueError(f"VCR {name}: expected {n} labels in 0..{NUM_CHOICES - 1}, got {arr!r:.80}")
    return arr


def vcr_accuracy(answer_scores, rationale_scores, answer_labels, rationale_labels) -> dict:
    """``answer_scores`` [N, 4]; ``rationale_scores`` [N, 4] conditioned on the gold answer; labels [N].

    Returns ``{"q_a", "qa_r", "q_ar"}`` in percent, the counts ``q_a_right``, ``qa_r_right``,
    ``q_ar_right`` and ``n``. A tie goes to the lowest index (``argmax``), the same way every run.
    """
    a_labels = np.asarray(answer_labels)
    n = a_labels.shape[0] if a_labels.ndim == 1 else -1
    a_labels = _labels("answer_labels", a_labels, n)
    r_labels = _labels("rationale_labels", rationale_labels, n)
    a_right = _scores("answer_scores", answer_scores, (n, NUM_CHOICES)).argmax(1) == a_labels
    r_right = _scores("rationale_scores", rationale_scores, (n, NUM_CHOICES)).argmax(1) == r_labels
    counts = {"q_a_right": int(a_right.sum()), "qa_r_right": int(r_right.sum()),
              "q_ar_right": int((a_right & r_right).sum()), "n": int(n)}
    pct = (lambda c: 100.0 * c / n) if n else (lambda c: 0.0)
    return {"q_a": pct(counts["q_a_right"]), "qa_r": pct(counts["qa_r_right"]), "q_ar": pct(counts["q_ar_right"]),
            **counts}


def write_submission(path: str, annot_ids: Sequence[str], answer_probs, rationale_probs) -> str:
    """The leaderboard CSV: ``answer_probs`` [N, 4], ``rationale_probs`` [N, 4, 4] (answer i given, rationale j)."""
    n = len(annot_ids)
    answers = _scores("answer_probs", answer_probs, (n, NUM_CHOICES))
    rationales = _scores("rationale_probs", rationale_probs, (n, NUM_CHOICES, NUM_CHOICES))
    if len(set(annot_ids)) != n:
        raise ValueError("VCR submission: annot_ids repeat")
    tmp = f"{path}.partial"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(SUBMISSION_COLUMNS)
        for k, annot_id in enumerate(annot_ids):
            out.writerow([annot_id] + [repr(float(p)) for p in answers[k]]
                         + [repr(float(p)) for p in rationales[k].reshape(-1)])
    os.replace(tmp, path)   # a killed run leaves no half-written submission under the real name
    return path
