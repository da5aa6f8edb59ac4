"""InterBERT's IoU-neighbourhood region masking for a whole batch, without the B x N x N IoU tensor."""

from __future__ import annotations

import torch

from . import _checks, reference
from ._checks import check_boxes, check_flags, check_threshold
from ._descriptor import OpDescriptor
from ._registry import register

_OP = "iou_neighbourhood_mask"


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

    chosen = DESCRIPTOR.select(boxes.device, backend, boxes.dtype)
    if chosen == "reference":
        return reference.iou_neighbourhood_mask(boxes, valid, anchors, threshold, inclusive)
    return DESCRIPTOR.op(chosen)(boxes, valid, anchors, threshold, inclusive)


# ---- the descriptor: the fake kernel of vlengine::iou_neighbourhood_mask[_triton] (bool output: no autograd) ----

def _fake(boxes, valid, anchors, threshold, inclusive):
    return valid.new_empty(valid.shape)


DESCRIPTOR = register(OpDescriptor(
    name="iou_neighbourhood_mask",
    summary="InterBERT's IoU-neighbourhood region masking, no B x N x N tensor",
    reference=reference.iou_neighbourhood_mask,
    library_op="iou_neighbourhood_mask",
    fakes={"iou_neighbourhood_mask": _fake},
    kernel_module="vlengine.kernels.iou_neighbourhood_mask",
    public=("iou_neighbourhood_mask", "sample_region_mask"),
))
