"""RoIAlign fused with VL-BERT's pixel masking, and a torchvision-compatible roi_align on the same kernels."""

from __future__ import annotations

import torch

from . import _checks, reference
from ._descriptor import Autograd, OpDescriptor
from ._registry import register


def roi_align_masked(input: torch.Tensor, rois, masked_boxes, output_size, spatial_scale: float = 1.0,
                     sampling_ratio: int = -1, aligned: bool = False, *, backend: str | None = None) -> torch.Tensor:
    """RoIAlign over ``input`` with every cell inside a masked box of the same image read as zero.

    Exactly ``torchvision.ops.roi_align(mask_pixels(input, masked_boxes scaled by
    spatial_scale), rois, ...)``, computed in one pass without a masked copy of
    the input: the bilinear weights of taps on masked cells are set to zero.
    This is VL-BERT's masked RoI classification input (the masked region's
    pixels are zeroed before the visual backbone) applied on the feature map.

    Args:
        input: [N, C, H, W] feature map (any strides; channels-last is read in place).
        rois: [K, 5] (batch_index, x1, y1, x2, y2) in input-image coordinates, or a
            list of N tensors [L_i, 4] (torchvision's form).
        masked_boxes: [M, 5] or a list of [L_i, 4], same coordinates as ``rois``.
            Cell (y, x) of image n is zeroed iff a masked box of image n has
            floor(x1*s) <= x <= floor(x2*s) and floor(y1*s) <= y <= floor(y2*s),
            s = spatial_scale (clamped to the map).
        output_size: (height, width) of each pooled RoI, or one int.
        spatial_scale: map size / image size (1/16 for a stride-16 C4 backbone).
        sampling_ratio: samples per bin along each axis; <= 0 chooses ceil(roi / bin) adaptively.
        aligned: False is the legacy Detectron RoIAlign VL-BERT uses (RoIs at least
            1 cell, no half-pixel offset); True shifts by half a pixel.
        backend: None picks the fastest usable ("cuda" > "triton" on GPU, "cpu" on
            CPU, "reference" when nothing compiled fits); tests and benchmarks name one.

    Returns:
        [K, C, output_size[0], output_size[1]] in ``input``'s dtype (float16 and
        bfloat16 accumulate in float32). Gradients flow to ``input`` only and are
        zero on masked cells.
    """
    op = "roi_align_masked"
    _checks.check_tensor(op, "input", input, ndim=4, floating=True)
    rois = _checks.boxes_to_rois(op, "rois", rois, input)
    masked_boxes = _checks.boxes_to_rois(op, "masked_boxes", masked_boxes, input)
    _checks.check_same_device(op, input=input, rois=rois, masked_boxes=masked_boxes)
    _checks.check_rois(op, "rois", rois, input.shape[0])
    _checks.check_rois(op, "masked_boxes", masked_boxes, input.shape[0])
    ph, pw = _checks.pair(op, "output_size", output_size)
    spatial_scale, sampling_ratio, aligned = float(spatial_scale), int(sampling_ratio), bool(aligned)
    if not spatial_scale > 0:
        raise ValueError(f"{op}: spatial_scale must be positive, got {spatial_scale}")

    chosen = DESCRIPTOR.select(input.device, backend, input.dtype)
    if chosen == "reference":
        return reference.roi_align_masked(input, rois, masked_boxes, (ph, pw), spatial_scale, sampling_ratio, aligned)
    return DESCRIPTOR.op(chosen)(input, rois, masked_boxes, spatial_scale, ph, pw, sampling_ratio, aligned)


def roi_align(input: torch.Tensor, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False, *, backend: str | None = None) -> torch.Tensor:
    """Drop-in for ``torchvision.ops.roi_align`` (same arguments, both box forms), on vlengine's kernels.

    Unlike torchvision's: the CPU kernel is parallel, bfloat16 is supported, and
    the CUDA backward has a deterministic mode
    (``torch.use_deterministic_algorithms(True)``).
    """
    _checks.check_tensor("roi_align", "input", input, ndim=4, floating=True)
    rois = _checks.boxes_to_rois("roi_align", "boxes", boxes, input)
    no_masks = input.new_zeros((0, 5))
    return roi_align_masked(input, rois, no_masks, output_size, spatial_scale, sampling_ratio, aligned, backend=backend)


# ---- the descriptor: fake kernels and autograd of vlengine::roi_align_masked[_triton] ----

def _fake_forward(input, rois, masked_boxes, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


def _fake_backward(grad, rois, masked_boxes, spatial_scale, pooled_height, pooled_width, batch_size, channels,
                   height, width, sampling_ratio, aligned):
    return grad.new_empty((batch_size, channels, height, width))


def _setup_context(ctx, inputs, output):
    input, rois, masked_boxes, spatial_scale, ph, pw, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois, masked_boxes)
    ctx.params = (spatial_scale, ph, pw, *input.shape, sampling_ratio, aligned)


def _backward(ops, ctx, grad):
    rois, masked_boxes = ctx.saved_tensors
    scale, ph, pw, n, c, h, w, sampling_ratio, aligned = ctx.params
    grad_input = ops.roi_align_masked_backward(grad, rois, masked_boxes, scale, ph, pw, n, c, h, w,
                                               sampling_ratio, aligned)
    return grad_input, None, None, None, None, None, None, None


DESCRIPTOR = register(OpDescriptor(
    name="roi_align_masked",
    summary="RoIAlign with VL-BERT's pixel masking in one pass (and a torchvision-compatible roi_align)",
    reference=reference.roi_align_masked,
    library_op="roi_align_masked",
    fakes={"roi_align_masked": _fake_forward, "roi_align_masked_backward": _fake_backward},
    autograd={"roi_align_masked": Autograd(_setup_context, _backward)},
    kernel_module="vlengine.kernels.roi_align_masked",
    public=("roi_align_masked", "roi_align"),
))
