"""NLVR2 accuracy and consistency as the official ``nlvr2/eval/metrics.py`` computes them.

A prediction is right when it equals the label case-insensitively ("True" /
"False"). Consistency groups the examples of one sentence: identifiers are
``split-set-pair-sentence`` and the official script blanks the third
``-``-separated field (the image pair), so every pair a sentence was written
for falls in one group; a group is consistent when all its examples are right.
Both are fractions in [0, 1] here and in the official output ("precision=",
"consistency=").
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping


def sentence_key(identifier: str) -> str:
    """``dev-850-0-1`` -> ``dev-850--1``: the official grouping key (pair field blanked)."""
    parts = identifier.split("-")
    if len(parts) < 4:
        raise ValueError(f"NLVR2 identifier {identifier!r} is not split-set-pair-sentence")
    parts[2] = ""
    return "-".join(parts)


def _label_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def nlvr2_metrics(predictions: Mapping[str, object], examples: Iterable[dict]) -> dict:
    """``{"accuracy", "consistency", "count", "sentences"}``.

    Args:
        predictions: identifier -> predicted label ("True"/"False", or a bool).
        examples: the official records (``identifier``, ``label``).
    """
    correct = 0
    total = 0
    consistent: dict[str, bool] = {}
    missing = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, dict) or not isinstance(ex.get("identifier"), str) or "label" not in ex:
            raise ValueError(f"nlvr2_metrics: example {i} has no 'identifier' and 'label'")
        ident = ex["identifier"]
        total += 1
        if ident not in predictions:
            missing.append(ident)
            continue
        key = sentence_key(ident)
        right = _label_text(predictions[ident]) == _label_text(ex["label"])
        correct += right
        consistent[key] = consistent.get(key, True) and right
    if missing:
        raise ValueError(f"nlvr2_metrics: {len(missing)} examples have no prediction (e.g. {missing[:3]})")
    if not total:
        raise ValueError("nlvr2_metrics: no examples")
    return {"accuracy": correct / total, "consistency": sum(consistent.values()) / len(consistent),
            "count": total, "sentences": len(consistent)}


def read_predictions_csv(path: str) -> dict:
    """The prediction CSV ``identifier,prediction`` (one per line) -> dict."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if len(parts) < 2:
                raise ValueError(f"{path} line {lineno}: expected 'identifier,prediction'")
            if parts[0] in out:
                raise ValueError(f"{path} line {lineno}: {parts[0]} is predicted twice")
            out[parts[0]] = parts[1]
    return out


def write_predictions_csv(path: str, predictions: Mapping[str, object]) -> str:
    """Writes ``identifier,True|False`` lines (the official prediction format)."""
    lines = []
    for ident, pred in predictions.items():
        label = _label_text(pred)
        if label not in ("true", "false"):
            raise ValueError(f"write_predictions_csv: prediction for {ident} is {pred!r}, not True/False")
        lines.append(f"{ident},{label.capitalize()}\n")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(tmp, path)
    return path
