"""VCR scored the leaderboard's way: Q->A, QA->R given the gold answer, Q->AR, and the submission CSV.

The rationales are scored under each of the four answers (four passes: the test split has no gold
answer, so the submission holds all sixteen ``rationale_conditioned_on_a{i}_{j}``); QA->R reads the
pass conditioned on the gold answer. A model trained on one sub-task only is scored on that one (its
accuracy), unless a second model scores the rationales (``rationale_model``: VL-BERT and R2C train one
model per sub-task and combine the two for Q->AR and the CSV). Every pass is ``predict_sharded``: each
question once over ranks.
"""

from __future__ import annotations

import os

import numpy as np

from vlengine.metrics.vcr import NUM_CHOICES, vcr_accuracy, write_submission

from .evaluate import predict_sharded


def _probabilities(model, dataset, **kw) -> dict | None:
    return predict_sharded(model, dataset, to_result=lambda p: p.float().tolist(), **kw)


def _single_accuracy(probs: dict, dataset, subtask: str) -> dict:
    labels = np.array([dataset.label(i) for i in range(len(dataset))])
    if (labels < 0).any():
        return None
    scores = np.array([probs[dataset.example_id(i)] for i in range(len(dataset))])
    right = int((scores.argmax(1) == labels).sum())
    return {subtask: 100.0 * right / len(labels), f"{subtask}_right": right, "n": len(labels)}


def score_vcr(model, dataset, subtasks, out_dir: str | None = None, name: str = "val", rationale_model=None,
              **kw) -> dict | None:
    """Metrics on rank 0 (None elsewhere, or when the split has no labels); writes
    ``{name}_predictions.csv`` (both sub-tasks) into ``out_dir``. ``kw``: predict_sharded's
    batch_size, device, cast. ``rationale_model``: scores QA->R instead of ``model``."""
    subtasks = tuple(subtasks)
    if len(subtasks) == 1 and rationale_model is None:
        single = dataset.variant((subtasks[0],))
        probs = _probabilities(model, single, **kw)
        return None if probs is None else _single_accuracy(probs, single, subtasks[0])
    answers = _probabilities(model, dataset.variant(("q_a",)), **kw)
    reader = model if rationale_model is None else rationale_model
    rationales = [_probabilities(reader, dataset.variant(("qa_r",), given_answer=i), **kw) for i in range(NUM_CHOICES)]
    if answers is None:
        return None
    questions = dataset.variant(("q_a",))
    ids = [questions.example_id(i) for i in range(len(questions))]
    answer_probs = np.array([answers[k] for k in ids])
    rationale_probs = np.array([[rationales[a][k] for a in range(NUM_CHOICES)] for k in ids])   # [N, answer, rationale]
    if out_dir:
        write_submission(os.path.join(out_dir, f"{name}_predictions.csv"), ids, answer_probs, rationale_probs)
    records = [questions.record(i) for i in range(len(questions))]
    if any("answer_label" not in r for r in records):
        return None
    gold = np.array([r["answer_label"] for r in records])
    return vcr_accuracy(answer_probs, rationale_probs[np.arange(len(ids)), gold], gold,
                        [r["rationale_label"] for r in records])
