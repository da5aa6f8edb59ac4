"""Referring-expression grounding (RefCOCO+): IoU of the top-scored box with the ground truth.

An expression is grounded when the box its model scores highest overlaps the ground-truth box with
IoU at the threshold (0.5). Two settings change the number at the boundary, and published systems
differ on both, so both are explicit and reported beside the accuracy:

    convention "plus_one"    boxes are inclusive pixel corners: area (x2 - x1 + 1) * (y2 - y1 + 1),
                             intersections likewise (VL-BERT's bbox_overlaps, the refer toolkit's)
               "continuous"  area (x2 - x1) * (y2 - y1) (torchvision's box_iou, UNITER)
    comparison ">="          IoU >= 0.5 counts (VL-BERT)
               ">"           IoU > 0.5 counts (UNITER)
Boxes are corners [x1, y1, x2, y2]; COCO's [x, y, w, h] maps to [x, y, x + w, y + h]
(``coco_corners``), which under "plus_one" is the box of w + 1 by h + 1 pixels, as VL-BERT reads it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

CONVENTIONS = ("plus_one", "continuous")
COMPARISONS = (">=", ">")
THRESHOLD = 0.5


def coco_corners(bbox) -> np.ndarray:
    """COCO's [x, y, w, h] -> corners [x, y, x + w, y + h] (float64)."""
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def box_iou(a, b, convention: str = "plus_one") -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (corners) -> [N, M] float64."""
    if convention not in CONVENTIONS:
        raise ValueError(f"IoU convention must be one of {CONVENTIONS}, got {convention!r}")
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    extra = 1.0 if convention == "plus_one" else 0.0
    area_a = (a[:, 2] - a[:, 0] + extra).clip(0) * (a[:, 3] - a[:, 1] + extra).clip(0)
    area_b = (b[:, 2] - b[:, 0] + extra).clip(0) * (b[:, 3] - b[:, 1] + extra).clip(0)
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + extra).clip(0)
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + extra).clip(0)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    # two empty boxes have no overlap to speak of: IoU 0, not 0 / 0
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def is_hit(iou, comparison: str = ">=", threshold: float = THRESHOLD) -> np.ndarray:
    """Which IoUs count as grounded under ``comparison`` (bool array of iou's shape)."""
    if comparison not in COMPARISONS:
        raise ValueError(f"IoU comparison must be one of {COMPARISONS}, got {comparison!r}")
    iou = np.asarray(iou, dtype=np.float64)
    return iou >= threshold if comparison == ">=" else iou > threshold


def grounding_accuracy(predicted: Mapping[str, Iterable[float]], ground_truth: Mapping[str, Iterable[float]],
                       convention: str = "plus_one", comparison: str = ">=",
                       threshold: float = THRESHOLD) -> dict:
    """Accuracy (percent) of ``predicted`` {expression id: corners} against ``ground_truth`` (same ids),
    with the settings that produced it: {"accuracy", "correct", "count", "iou_convention",
    "iou_comparison", "iou_threshold"}. Every ground-truth expression needs a prediction."""
    missing = [k for k in ground_truth if k not in predicted]
    if missing:
        raise ValueError(f"{len(missing)} expressions have no predicted box (e.g. {missing[0]!r})")
    correct = 0
    for key, gt in ground_truth.items():
        iou = box_iou(predicted[key], gt, convention)[0, 0]
        correct += bool(is_hit(iou, comparison, threshold))
    count = len(ground_truth)
    return {"accuracy": 100.0 * correct / count if count else float("nan"), "correct": correct, "count": count,
            "iou_convention": convention, "iou_comparison": comparison, "iou_threshold": threshold}


def candidate_bounds(candidates: Iterable, ground_truth: Iterable, convention: str = "plus_one",
                     comparison: str = ">=", threshold: float = THRESHOLD) -> dict:
    """What the candidate boxes allow, exactly (percent): ``chance`` = the expected accuracy of choosing
    one candidate uniformly at random (mean over expressions of hits / candidates), ``upper_bound`` =
    the fraction of expressions with at least one candidate that counts."""
    chance, reachable, count = 0.0, 0, 0
    for boxes, gt in zip(candidates, ground_truth):
        hits = is_hit(box_iou(boxes, gt, convention)[:, 0], comparison, threshold)
        if len(hits) == 0:
            raise ValueError(f"expression {count} has no candidate box")
        chance += hits.mean()
        reachable += bool(hits.any())
        count += 1
    if count == 0:
        return {"chance": float("nan"), "upper_bound": float("nan")}
    return {"chance": float(100.0 * chance / count), "upper_bound": 100.0 * reachable / count}
