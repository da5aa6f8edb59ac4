"""InterBERT's IoU-neighbourhood region masking for a whole batch, without the B x N x N IoU tensor."""

from __future__ import annotations

import math

import torch

from . import _backend, _checks, _extension, reference
from ._registration import register_fake_once
from .box_iou_batched import check_boxes

_extension.load()
try:  # the Triton kernels register vlengine::iou_neighbourhood_mask_triton
    from vlengine.kernels import iou_neighbourhood_mask as _triton_kernels  # noqa: F401
except ImportError:
    _triton_kernels = None

_OP = "iou_neighbourhood_mask"


def check_flags(op: str, name: str, flags, boxes: torch.Tensor) -> None:
    _checks.check_tensor(op, name, flags, ndim=2)
    if flags.dtype != torch.bool:
        raise TypeError(f"{op}: {name} must be a bool tensor, got {flags.dtype}")
    if tuple(flags.shape) != tuple(boxes.shape[:2]):
        raise ValueError(f"{op}: {name} must be [B, N] = {list(boxes.shape[:2])} like boxes, "
                         f"got shape {tuple(flags.shape)}")


def check_threshold(op: str, threshold) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: threshold must be a number, got {threshold!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{op}: threshold must be an IoU in [0, 1], got {threshold!r}")
    return value


def iou_neighbourhood_mask(boxes: torch.Tensor, valid: torch.Tensor, anchors: torch.Tensor,
                           threshold: float = 0.4, inclusive: bool = False, *,
                           backend: str | None = None) -> torch.Tensor:
    """Which regions InterBERT's masked region modeling masks, given the anchors.

    Region i of image b is masked iff ``valid[b, i]`` and it is an anchor or
    its IoU with some valid anchor of the same image is > ``threshold``
    (>= when ``inclusive``). Masking the neighbours too keeps the model from
    reading a masked object off a heavily overlapping box. Each kernel loops
    over its image's anchors: memory is O(B * N), never B x N x N.

    Args:
        boxes: [B, N, 4] (x1, y1, x2, y2), any floating dtype (float16/bfloat16
            are computed in float32). Valid boxes must be finite with x2 >= x1,
            y2 >= y1; padded rows may hold anything.
        valid: [B, N] bool, False on padding.
        anchors: [B, N] bool; invalid anchors are ignored.
        threshold: IoU in [0, 1]. InterBERT's paper uses 0.4 with ">", its code
            ">= 0.4" (``inclusive=True``).
        inclusive: compare with >= instead of >.
        backend: see ``vlengine.ops.box_iou_batched``.

    Returns:
        [B, N] bool. IoU of two zero-area boxes is 0 (never NaN); an anchor is
        masked even when its box has zero area.
    """
    op = _OP
    check_boxes(op, "boxes", boxes, values=False)  # shape first: the flags' messages quote [B, N]
    check_flags(op, "valid", valid, boxes)
    check_flags(op, "anchors", anchors, boxes)
    _checks.check_same_device(op, boxes=boxes, valid=valid, anchors=anchors)
    check_boxes(op, "boxes", boxes, valid)
    threshold, inclusive = check_threshold(op, threshold), bool(inclusive)

    chosen = _backend.select(_OP, boxes.device, backend)
    if chosen == "reference":
        return reference.iou_neighbourhood_mask(boxes, valid, anchors, threshold, inclusive)
    fn = (torch.ops.vlengine.iou_neighbourhood_mask_triton if chosen == "triton"
          else torch.ops.vlengine.iou_neighbourhood_mask)
    return fn(boxes, valid, anchors, threshold, inclusive)


# ---- torch.library registration: fake kernels (the output is bool: nothing to differentiate) ----

def _fake(boxes, valid, anchors, threshold, inclusive):
    return valid.new_empty(valid.shape)


for _suffix in ("", "_triton"):
    register_fake_once(f"vlengine::iou_neighbourhood_mask{_suffix}", _fake)
