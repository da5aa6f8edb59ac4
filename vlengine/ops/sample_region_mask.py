"""InterBERT's masked region modeling draw: random anchors, then their IoU neighbourhood."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _checks
from ._checks import check_boxes, check_flags, check_threshold
from .iou_neighbourhood_mask import iou_neighbourhood_mask


@dataclass(frozen=True)
class RegionMaskPreset:
    """One setting of (anchor probability, IoU threshold, >= or >) for ``sample_region_mask``."""

    anchor_prob: float
    threshold: float
    inclusive: bool

    def kwargs(self) -> dict:
        return {"anchor_prob": self.anchor_prob, "threshold": self.threshold, "inclusive": self.inclusive}


# The paper (seed 002, sec. 3.3): anchors with probability 15%, neighbours with IoU > 0.4.
INTERBERT_PAPER = RegionMaskPreset(anchor_prob=0.15, threshold=0.4, inclusive=False)
# The released code: anchors with probability 10%, neighbours with IoU >= 0.4. (It also adds
# 1 to widths and heights of normalised boxes, a pixel-coordinate habit that inflates every
# IoU on [0, 1] boxes; that is not reproduced: pass pixel boxes and this rule instead.)
INTERBERT_RELEASED = RegionMaskPreset(anchor_prob=0.1, threshold=0.4, inclusive=True)


def check_generator(op: str, generator, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{op}: generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise RuntimeError(f"{op}: generator is on {generator.device} but the tensors are on {device}; "
                           f"create it with torch.Generator(device={str(device)!r})")


def check_probability(op: str, name: str, value) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"{op}: {name} must be a probability in [0, 1], got {value!r}")
    return p


def sample_region_mask(boxes: torch.Tensor, valid: torch.Tensor, anchor_prob: float = 0.15, threshold: float = 0.4,
                       inclusive: bool = False, generator: torch.Generator | None = None, *,
                       return_anchors: bool = False, backend: str | None = None):
    """Draw InterBERT MRM anchors and mask them with their IoU neighbourhood, for a whole batch.

    Each valid region becomes an anchor independently with probability
    ``anchor_prob`` (one ``torch.rand`` over the batch, from ``generator``);
    then ``iou_neighbourhood_mask`` masks the anchors and every valid region
    whose IoU with an anchor of its image is > ``threshold`` (>= when
    ``inclusive``). Defaults are the paper's (``INTERBERT_PAPER``); the
    released code's choice is ``INTERBERT_RELEASED``:
    ``sample_region_mask(boxes, valid, **INTERBERT_RELEASED.kwargs())``.

    Args:
        boxes: [B, N, 4] (x1, y1, x2, y2) on any device.
        valid: [B, N] bool, False on padding (padding is never an anchor nor masked).
        anchor_prob, threshold, inclusive: see above.
        generator: a torch.Generator on the boxes' device, for reproducible draws.
        return_anchors: also return the [B, N] bool anchors.
        backend: see ``vlengine.ops.box_iou_batched``.

    Returns:
        [B, N] bool masked regions, or (masked, anchors) with ``return_anchors``.
    """
    op = "sample_region_mask"
    check_boxes(op, "boxes", boxes, values=False)
    check_flags(op, "valid", valid, boxes)
    _checks.check_same_device(op, boxes=boxes, valid=valid)
    anchor_prob = check_probability(op, "anchor_prob", anchor_prob)
    check_threshold(op, threshold)
    check_generator(op, generator, boxes.device)
    draw = torch.rand(valid.shape, generator=generator, device=valid.device)
    anchors = (draw < anchor_prob) & valid
    masked = iou_neighbourhood_mask(boxes, valid, anchors, threshold, inclusive, backend=backend)
    return (masked, anchors) if return_anchors else masked
