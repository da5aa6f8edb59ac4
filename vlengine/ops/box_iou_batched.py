"""Batched IoU of two sets of boxes per image, with zero-union pairs at 0 instead of NaN."""

from __future__ import annotations

import torch

from . import _backend, _checks, _extension, reference
from ._registration import register_autograd_once, register_fake_once
from .reference.box_iou import box_iou_batched_backward

_extension.load()
try:  # the Triton kernels register vlengine::box_iou_batched_triton
    from vlengine.kernels import box_iou_batched as _triton_kernels  # noqa: F401
except ImportError:
    _triton_kernels = None

_OP = "box_iou_batched"


def check_boxes(op: str, name: str, boxes, valid: torch.Tensor | None = None, *, values: bool = True) -> None:
    """[B, N, 4] floating (x1, y1, x2, y2) boxes: shape always; finite, x2 >= x1, y2 >= y1 when value checks run.

    With ``valid`` ([B, N] bool), only valid boxes are value-checked: padding may hold anything.
    """
    _checks.check_tensor(op, name, boxes, ndim=3, floating=True)
    if boxes.shape[2] != 4:
        raise ValueError(f"{op}: {name} must be [B, N, 4] (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if not values or boxes.numel() == 0 or not _checks.value_checks_enabled():
        return
    b = boxes.detach()
    finite = torch.isfinite(b).all(dim=2)
    inverted = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
    if valid is not None:
        finite, inverted = finite | ~valid, inverted & valid
    if not finite.all():
        i, j = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(f"{op}: {name}[{i}, {j}] has a non-finite value: {b[i, j].tolist()}")
    if inverted.any():
        i, j = (int(v) for v in inverted.nonzero()[0])
        raise ValueError(f"{op}: {name}[{i}, {j}] has x2 < x1 or y2 < y1: {b[i, j].tolist()}")


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

    chosen = _backend.select(_OP, boxes1.device, backend)
    if chosen == "reference":
        return reference.box_iou_batched(boxes1, boxes2)
    fn = torch.ops.vlengine.box_iou_batched_triton if chosen == "triton" else torch.ops.vlengine.box_iou_batched
    return fn(boxes1, boxes2)


# ---- torch.library registration: fake kernels and autograd for each compiled backend ----

def _fake(boxes1, boxes2):
    return boxes1.new_empty((boxes1.shape[0], boxes1.shape[1], boxes2.shape[1]))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    boxes1, boxes2 = ctx.saved_tensors
    return box_iou_batched_backward(grad, boxes1, boxes2)


for _suffix in ("", "_triton"):
    register_fake_once(f"vlengine::box_iou_batched{_suffix}", _fake)
    register_autograd_once(f"vlengine::box_iou_batched{_suffix}", _backward, _setup_context)
