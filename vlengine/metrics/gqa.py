"""GQA accuracy as the official ``eval.py`` computes it.

A question counts only if ``isBalanced``; its score is 1 when the predicted
string equals the gold ``answer`` exactly (no normalisation: the answers are
single lower-case words or short phrases from a closed set). ``open`` is the
accuracy over questions of structural type "query", ``binary`` over the rest
(verify, logical, choose, compare). Percentages are ``sum * 100 / count``,
unrounded (the official script only rounds when printing, to 2 decimals).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Mapping


def gqa_accuracy(predictions: Mapping[str, str], questions: Mapping[str, dict]) -> dict:
    """``{"accuracy", "binary", "open", "perStructuralType", "perSemanticType", "count"}`` in percent.

    Args:
        predictions: question id (str) -> predicted answer; must cover every balanced question.
        questions: the official ``{split}_balanced_questions.json`` dict (question id -> record
            with ``answer``, ``isBalanced`` (default True) and ``types``).
    """
    scores: list[float] = []
    by_kind: dict[str, list[float]] = {"binary": [], "open": []}
    by_structural: dict[str, list[float]] = defaultdict(list)
    by_semantic: dict[str, list[float]] = defaultdict(list)
    missing = []
    for qid, q in questions.items():
        if not isinstance(q, dict) or not isinstance(q.get("answer"), str):
            raise ValueError(f"gqa_accuracy: question {qid} has no 'answer' string")
        if not q.get("isBalanced", True):
            continue
        if qid not in predictions:
            missing.append(qid)
            continue
        score = float(predictions[qid] == q["answer"])
        types = q.get("types") or {}
        structural = types.get("structural")
        scores.append(score)
        by_kind["open" if structural == "query" else "binary"].append(score)
        by_structural[structural].append(score)
        by_semantic[types.get("semantic")].append(score)
    if missing:
        raise ValueError(f"gqa_accuracy: {len(missing)} balanced questions have no prediction (e.g. {missing[:3]})")
    if not scores:
        raise ValueError("gqa_accuracy: no balanced questions")
    pct = lambda s: sum(s) * 100.0 / len(s) if s else 0.0
    return {"accuracy": pct(scores), "binary": pct(by_kind["binary"]), "open": pct(by_kind["open"]),
            "perStructuralType": {k: pct(v) for k, v in by_structural.items()},
            "perSemanticType": {k: pct(v) for k, v in by_semantic.items()}, "count": len(scores)}


def read_predictions(predictions, where: str = "predictions") -> dict:
    """The submission format ``[{"questionId": str, "prediction": str}]`` (list or JSON file path) -> dict."""
    if isinstance(predictions, (str, os.PathLike)):
        where = str(predictions)
        with open(predictions, encoding="utf-8") as f:
            try:
                predictions = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(predictions, list):
        raise ValueError(f"{where}: expected a list of {{\"questionId\", \"prediction\"}}")
    out = {}
    for i, p in enumerate(predictions):
        if not isinstance(p, dict) or "questionId" not in p or not isinstance(p.get("prediction"), str):
            raise ValueError(f"{where}: entry {i} is not {{\"questionId\": str, \"prediction\": str}}")
        qid = str(p["questionId"])
        if qid in out:
            raise ValueError(f"{where}: entry {i}: question {qid} is predicted twice")
        out[qid] = p["prediction"]
    return out


def to_submission(predictions: Mapping[str, str]) -> list[dict]:
    """{question id: answer} -> ``[{"questionId", "prediction"}]``."""
    return [{"questionId": str(q), "prediction": a} for q, a in predictions.items()]
