"""VL-BERT's pixel masking for a whole batch in one call."""

from __future__ import annotations

import torch

from . import _backend, _checks, _extension, reference
from ._registration import register_autograd_once, register_fake_once

_extension.load()
try:  # the Triton kernels register vlengine::mask_pixels_triton
    from vlengine.kernels import mask_pixels as _triton_kernels  # noqa: F401
except ImportError:
    _triton_kernels = None

_OP = "mask_pixels"


def _fill_tensor(op: str, fill, images: torch.Tensor) -> torch.Tensor:
    if isinstance(fill, (int, float)):
        return torch.tensor(float(fill), dtype=images.dtype, device=images.device)
    if isinstance(fill, (list, tuple)):
        fill = torch.tensor(fill, dtype=images.dtype, device=images.device)
    _checks.check_tensor(op, "fill", fill)
    if not (fill.dim() == 0 or (fill.dim() == 1 and fill.shape[0] == images.shape[1])):
        raise ValueError(f"{op}: fill must be a scalar or have one value per channel ({images.shape[1]}), "
                         f"got shape {tuple(fill.shape)}")
    return fill.to(device=images.device, dtype=images.dtype)


def mask_pixels(images: torch.Tensor, boxes, fill=0.0, inplace: bool = False, *,
                backend: str | None = None) -> torch.Tensor:
    """Fill every box of each image with ``fill``: VL-BERT's masking of RoI pixels.

    Box (n, x1, y1, x2, y2) fills ``images[n, :, floor(y1):floor(y2)+1,
    floor(x1):floor(x2)+1]``, clamped to the image (the inclusive rule of
    VL-BERT's data loader; boxes wholly outside fill nothing).

    Args:
        images: [N, C, H, W], any floating dtype and strides.
        boxes: [K, 5] (batch_index, x1, y1, x2, y2) in pixels, or a list of N [L_i, 4].
        fill: a scalar or one value per channel (after normalisation the mean pixel is 0,
            VL-BERT's choice; before it, the dataset mean). Not differentiable.
        inplace: write into ``images`` (VL-BERT's loader does) instead of returning a copy.
        backend: see ``vlengine.ops.roi_align_masked``.

    Returns:
        The masked images (``images`` itself when inplace). The gradient is zero
        on filled pixels and passes through elsewhere.
    """
    op = "mask_pixels"
    _checks.check_tensor(op, "images", images, ndim=4, floating=True)
    boxes = _checks.boxes_to_rois(op, "boxes", boxes, images)
    _checks.check_same_device(op, images=images, boxes=boxes)
    _checks.check_rois(op, "boxes", boxes, images.shape[0])
    fill = _fill_tensor(op, fill, images)

    chosen = _backend.select(_OP, images.device, backend)
    if chosen == "reference":
        return reference.mask_pixels(images, boxes, fill, inplace=inplace)
    name = "mask_pixels_triton" if chosen == "triton" else "mask_pixels"
    if inplace and not (images.requires_grad and torch.is_grad_enabled()):
        getattr(torch.ops.vlengine, name + "_")(images, boxes, fill)
        return images
    out = getattr(torch.ops.vlengine, name)(images, boxes, fill)
    # In place on a tensor autograd tracks: copy_ records the gradient path.
    return images.copy_(out) if inplace else out


# ---- torch.library registration ----

def _fake(images, boxes, fill):
    return torch.empty_like(images)


def _fake_inplace(images, boxes, fill):
    return None


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _make_backward(forward_op):
    def backward(ctx, grad):
        (boxes,) = ctx.saved_tensors
        # The filled pixels no longer depend on the input: their gradient is zero.
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        return forward_op()(grad, boxes, zero), None, None
    return backward


for _suffix in ("", "_triton"):
    _name = f"mask_pixels{_suffix}"
    register_fake_once(f"vlengine::{_name}", _fake)
    register_fake_once(f"vlengine::{_name}_", _fake_inplace)
    register_autograd_once(f"vlengine::{_name}", _make_backward(lambda n=_name: getattr(torch.ops.vlengine, n)),
                           _setup_context)
