"""Batched IoU of two sets of boxes per image, with zero-union pairs at 0 instead of NaN."""

from __future__ import annotations

import torch

from . import _checks, reference
from ._checks import check_boxes
from ._descriptor import Autograd, OpDescriptor
from ._registry import register
from .reference.box_iou import box_iou_batched_backward

_OP = "box_iou_batched"


def box_iou_batched(boxes1: torch.Tensor, boxes2: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """IoU of every pair of boxes within each image: a batched ``torchvision.ops.box_iou``.

    Unlike torchvision's, two zero-area boxes (zero union) give 0, not NaN, and
    a whole batch is one kernel launch.

    Args:
        boxes1: [B, N, 4] (x1, y1, x2, y2), any floating dtype (float16/bfloat16
            are computed in float32), x2 >= x1 and y2 >= y1.
        boxes2: [B, M, 4], same dtype and device as ``boxes1``.
        backend: None picks the fastest usable ("cuda" > "triton" on GPU, "cpu"
            on CPU, "reference" when nothing compiled fits); tests and
            benchmarks name one.

    Returns:
        [B, N, M] IoU in the boxes' dtype. Differentiable w.r.t. both inputs.
    """
    op = _OP
    check_boxes(op, "boxes1", boxes1, values=False)
    check_boxes(op, "boxes2", boxes2, values=False)
    _checks.check_same_device(op, boxes1=boxes1, boxes2=boxes2)
    if boxes1.shape[0] != boxes2.shape[0]:
        raise ValueError(f"{op}: boxes1 and boxes2 must have the same batch size, got shapes "
                         f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    if boxes1.dtype != boxes2.dtype:
        raise TypeError(f"{op}: boxes1 and boxes2 must have the same dtype, got {boxes1.dtype} and {boxes2.dtype}")
    check_boxes(op, "boxes1", boxes1)
    check_boxes(op, "boxes2", boxes2)

    chosen = DESCRIPTOR.select(boxes1.device, backend, boxes1.dtype)
    if chosen == "reference":
        return reference.box_iou_batched(boxes1, boxes2)
    return DESCRIPTOR.op(chosen)(boxes1, boxes2)


# ---- the descriptor: fake kernel and autograd of vlengine::box_iou_batched[_triton] ----

def _fake(boxes1, boxes2):
    return boxes1.new_empty((boxes1.shape[0], boxes1.shape[1], boxes2.shape[1]))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ops, ctx, grad):
    # Closed-form PyTorch for every backend: the forward's cost is in the pairs, not the formula.
    boxes1, boxes2 = ctx.saved_tensors
    return box_iou_batched_backward(grad, boxes1, boxes2)


DESCRIPTOR = register(OpDescriptor(
    name="box_iou_batched",
    summary="IoU of every pair of boxes per image (zero union gives 0, not NaN)",
    reference=reference.box_iou_batched,
    library_op="box_iou_batched",
    fakes={"box_iou_batched": _fake},
    autograd={"box_iou_batched": Autograd(_setup_context, _backward)},
    kernel_module="vlengine.kernels.box_iou_batched",
))
