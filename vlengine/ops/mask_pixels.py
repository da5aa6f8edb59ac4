"""VL-BERT's pixel masking for a whole batch in one call."""

from __future__ import annotations

import torch

from . import _checks, reference
from ._descriptor import Autograd, OpDescriptor
from ._registry import register


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

    chosen = DESCRIPTOR.select(images.device, backend, images.dtype)
    if chosen == "reference":
        return reference.mask_pixels(images, boxes, fill, inplace=inplace)
    if inplace and not (images.requires_grad and torch.is_grad_enabled()):
        DESCRIPTOR.op(chosen, "mask_pixels_")(images, boxes, fill)
        return images
    out = DESCRIPTOR.op(chosen)(images, boxes, fill)
    # In place on a tensor autograd tracks: copy_ records the gradient path.
    return images.copy_(out) if inplace else out


# ---- the descriptor: fake kernels and autograd of vlengine::mask_pixels[_triton] ----

def _fake(images, boxes, fill):
    return torch.empty_like(images)


def _fake_inplace(images, boxes, fill):
    return None


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _backward(ops, ctx, grad):
    (boxes,) = ctx.saved_tensors
    # The filled pixels no longer depend on the input: their gradient is zero.
    zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
    return ops.mask_pixels(grad, boxes, zero), None, None


DESCRIPTOR = register(OpDescriptor(
    name="mask_pixels",
    summary="VL-BERT's pixel masking of boxes, a whole batch in one pass",
    reference=reference.mask_pixels,
    library_op="mask_pixels",
    fakes={"mask_pixels": _fake, "mask_pixels_": _fake_inplace},
    autograd={"mask_pixels": Autograd(_setup_context, _backward)},
    kernel_module="vlengine.kernels.mask_pixels",
))
