"""Triton RoIAlign with pixel masking (forward and backward), as torch.library ops.

One program computes one output bin of one RoI for a block of channels: the
sample coordinates and bilinear weights are scalars shared by the block, the
channel values are vectors. Taps on masked cells are dropped by reading the
[N, H, W] byte plane of masked cells (built by the reference's difference-array
construction, 1/C the size of the input). The backward scatters with atomic
adds into a float32 (float64 for float64) buffer.

Registered as vlengine::roi_align_masked_triton and
vlengine::roi_align_masked_backward_triton; vlengine.ops adds autograd.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._autotune import Tuning, size_bucket, tuned
from .cell_mask import masked_cell_plane

# Both directions gather (forward) or scatter with atomics (backward) four taps
# per sample at data-dependent addresses: latency-bound, so the choice is the
# channel block (the vector each program moves per tap; channels are C apart
# in NCHW, adjacent in channels-last) and warps. The sample loop's bounds are
# read from the RoI, so stages have little to pipeline. Keyed on the rounded
# channel count C; the RoI count varies every batch and only scales the grid.
# The backward accumulates into grad_in, zeroed before each timed run.
# Unmeasured defaults: measure when a GPU is lent.
_FORWARD_CONFIGS_SM80 = (triton.Config({"BLOCK_C": 32}, num_warps=1, num_stages=1),
                         triton.Config({"BLOCK_C": 64}, num_warps=2, num_stages=1),
                         triton.Config({"BLOCK_C": 128}, num_warps=4, num_stages=1),
                         triton.Config({"BLOCK_C": 256}, num_warps=4, num_stages=1))
_FORWARD_CONFIGS_SM90 = (triton.Config({"BLOCK_C": 64}, num_warps=2, num_stages=1),
                         triton.Config({"BLOCK_C": 128}, num_warps=4, num_stages=1),
                         triton.Config({"BLOCK_C": 256}, num_warps=4, num_stages=1),
                         triton.Config({"BLOCK_C": 256}, num_warps=8, num_stages=1))
FORWARD_TUNING = Tuning(sm_80=_FORWARD_CONFIGS_SM80, sm_90=_FORWARD_CONFIGS_SM90, key=("key_c",),
                        interpreter=triton.Config({"BLOCK_C": 128}, num_warps=4, num_stages=1))
BACKWARD_TUNING = Tuning(sm_80=_FORWARD_CONFIGS_SM80[:3], sm_90=_FORWARD_CONFIGS_SM90[:3], key=("key_c",),
                         interpreter=triton.Config({"BLOCK_C": 128}, num_warps=4, num_stages=1),
                         reset_to_zero=("grad_in_ptr",))


@triton.jit
def _roi_geometry(roi_ptr, spatial_scale, PH: tl.constexpr, PW: tl.constexpr, SAMPLING_RATIO: tl.constexpr,
                  ALIGNED: tl.constexpr):
    """torchvision's roi_align geometry of one RoI: corner, bin size, samples per bin."""
    x1 = tl.load(roi_ptr + 1)
    y1 = tl.load(roi_ptr + 2)
    x2 = tl.load(roi_ptr + 3)
    y2 = tl.load(roi_ptr + 4)
    offset = 0.5 if ALIGNED else 0.0
    start_w = x1 * spatial_scale - offset
    start_h = y1 * spatial_scale - offset
    roi_w = x2 * spatial_scale - offset - start_w
    roi_h = y2 * spatial_scale - offset - start_h
    if not ALIGNED:  # legacy mode: RoIs at least one cell
        roi_w = tl.maximum(roi_w, 1.0)
        roi_h = tl.maximum(roi_h, 1.0)
    bin_h = roi_h / PH
    bin_w = roi_w / PW
    if SAMPLING_RATIO > 0:
        grid_h = tl.full((), SAMPLING_RATIO, tl.int32)
        grid_w = tl.full((), SAMPLING_RATIO, tl.int32)
    else:  # adaptive: the loop bounds are read from the RoI inside the kernel, no host sync
        grid_h = tl.ceil(roi_h / PH).to(tl.int32)
        grid_w = tl.ceil(roi_w / PW).to(tl.int32)
    count = tl.maximum(grid_h * grid_w, 1)
    return start_h, start_w, bin_h, bin_w, grid_h, grid_w, count


@triton.jit
def _axis_tap(pos, size):
    """Low/high cell and the weights of one axis; `inside` is False off the map (weight 0)."""
    inside = (pos >= -1.0) & (pos <= size)
    pos = tl.where(inside, tl.maximum(pos, 0.0), 0.0)
    low = pos.to(tl.int32)
    edge = low >= size - 1
    low = tl.where(edge, size - 1, low)
    high = tl.where(edge, size - 1, low + 1)
    pos = tl.where(edge, low.to(pos.dtype), pos)
    frac = pos - low
    keep = inside.to(pos.dtype)
    return low, high, (1.0 - frac) * keep, frac * keep


@triton.jit
def _drop_masked(w, mask_plane, y, x, W, HAS_MASK: tl.constexpr):
    if HAS_MASK:
        w = tl.where(tl.load(mask_plane + y * W + x) != 0, 0.0, w)
    return w


@triton.jit
def _sample_taps(y, x, H, W, mask_plane, HAS_MASK: tl.constexpr):
    """The four cells one sample reads and their weights, zero on masked cells and off the map."""
    y0, y1, wy0, wy1 = _axis_tap(y, H)
    x0, x1, wx0, wx1 = _axis_tap(x, W)
    w00 = _drop_masked(wy0 * wx0, mask_plane, y0, x0, W, HAS_MASK)
    w01 = _drop_masked(wy0 * wx1, mask_plane, y0, x1, W, HAS_MASK)
    w10 = _drop_masked(wy1 * wx0, mask_plane, y1, x0, W, HAS_MASK)
    w11 = _drop_masked(wy1 * wx1, mask_plane, y1, x1, W, HAS_MASK)
    return y0, y1, x0, x1, w00, w01, w10, w11


@tuned(FORWARD_TUNING)
@triton.jit(do_not_specialize=["key_c"])
def _roi_align_masked_fwd_kernel(input_ptr, rois_ptr, mask_ptr, out_ptr, C, H, W, s_n, s_c, s_h, s_w,
                                 spatial_scale, key_c, PH: tl.constexpr, PW: tl.constexpr, SAMPLING_RATIO: tl.constexpr,
                                 ALIGNED: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    k = pid // (PH * PW)
    ph = (pid // PW) % PH
    pw = pid % PW
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cs < C
    roi_ptr = rois_ptr + k * 5
    n = tl.load(roi_ptr).to(tl.int64)
    base = input_ptr + n * s_n + cs.to(tl.int64) * s_c
    mask_plane = mask_ptr + n * H * W
    start_h, start_w, bin_h, bin_w, grid_h, grid_w, count = _roi_geometry(
        roi_ptr, spatial_scale, PH, PW, SAMPLING_RATIO, ALIGNED)
    acc = tl.zeros([BLOCK_C], dtype=start_h.dtype)
    for iy in range(0, grid_h):
        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            y0, y1, x0, x1, w00, w01, w10, w11 = _sample_taps(y, x, H, W, mask_plane, HAS_MASK)
            v00 = tl.load(base + y0 * s_h + x0 * s_w, mask=cmask, other=0.0).to(acc.dtype)
            v01 = tl.load(base + y0 * s_h + x1 * s_w, mask=cmask, other=0.0).to(acc.dtype)
            v10 = tl.load(base + y1 * s_h + x0 * s_w, mask=cmask, other=0.0).to(acc.dtype)
            v11 = tl.load(base + y1 * s_h + x1 * s_w, mask=cmask, other=0.0).to(acc.dtype)
            acc += w00 * v00 + w01 * v01 + w10 * v10 + w11 * v11
    out = acc / count
    tl.store(out_ptr + (k * C + cs) * (PH * PW) + ph * PW + pw, out.to(out_ptr.dtype.element_ty), mask=cmask)


@tuned(BACKWARD_TUNING)
@triton.jit(do_not_specialize=["key_c"])
def _roi_align_masked_bwd_kernel(grad_ptr, rois_ptr, mask_ptr, grad_in_ptr, C, H, W, spatial_scale, key_c,
                                 PH: tl.constexpr, PW: tl.constexpr, SAMPLING_RATIO: tl.constexpr,
                                 ALIGNED: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    k = pid // (PH * PW)
    ph = (pid // PW) % PH
    pw = pid % PW
    cs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cs < C
    roi_ptr = rois_ptr + k * 5
    n = tl.load(roi_ptr).to(tl.int64)
    plane = grad_in_ptr + (n * C + cs.to(tl.int64)) * H * W
    mask_plane = mask_ptr + n * H * W
    start_h, start_w, bin_h, bin_w, grid_h, grid_w, count = _roi_geometry(
        roi_ptr, spatial_scale, PH, PW, SAMPLING_RATIO, ALIGNED)
    g = tl.load(grad_ptr + (k * C + cs) * (PH * PW) + ph * PW + pw, mask=cmask, other=0.0)
    g = g.to(grad_in_ptr.dtype.element_ty) / count
    for iy in range(0, grid_h):
        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            y0, y1, x0, x1, w00, w01, w10, w11 = _sample_taps(y, x, H, W, mask_plane, HAS_MASK)
            tl.atomic_add(plane + y0 * W + x0, g * w00, mask=cmask)  # zero weights add nothing
            tl.atomic_add(plane + y0 * W + x1, g * w01, mask=cmask)  # zero weights add nothing
            tl.atomic_add(plane + y1 * W + x0, g * w10, mask=cmask)  # zero weights add nothing
            tl.atomic_add(plane + y1 * W + x1, g * w11, mask=cmask)  # zero weights add nothing


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _cell_mask(masked_boxes, n, h, w, scale, device):
    if masked_boxes.shape[0] == 0:
        return torch.zeros((1,), dtype=torch.uint8, device=device), False
    return masked_cell_plane(masked_boxes, n, h, w, scale), True


def _grid(bins: int, channels: int):
    return lambda meta: (bins, triton.cdiv(channels, meta["BLOCK_C"]))


@triton_op("vlengine::roi_align_masked_triton", mutates_args=())
def roi_align_masked_triton(input: torch.Tensor, rois: torch.Tensor, masked_boxes: torch.Tensor,
                            spatial_scale: float, pooled_height: int, pooled_width: int, sampling_ratio: int,
                            aligned: bool) -> torch.Tensor:
    n, c, h, w = input.shape
    k = rois.shape[0]
    out = torch.zeros((k, c, pooled_height, pooled_width), dtype=input.dtype, device=input.device)
    if k == 0 or c == 0 or h == 0 or w == 0:
        return out
    rois_acc = rois.to(_acc_dtype(input.dtype)).contiguous()
    cell_mask, has_mask = _cell_mask(masked_boxes, n, h, w, spatial_scale, input.device)
    kernel = _roi_align_masked_fwd_kernel.for_device(input.device)
    wrap_triton(kernel)[_grid(k * pooled_height * pooled_width, c)](
        input, rois_acc, cell_mask, out, c, h, w, *input.stride(), spatial_scale, size_bucket(c),
        PH=pooled_height, PW=pooled_width, SAMPLING_RATIO=max(sampling_ratio, 0), ALIGNED=aligned,
        HAS_MASK=has_mask)
    return out


@triton_op("vlengine::roi_align_masked_backward_triton", mutates_args=())
def roi_align_masked_backward_triton(grad: torch.Tensor, rois: torch.Tensor, masked_boxes: torch.Tensor,
                                     spatial_scale: float, pooled_height: int, pooled_width: int, batch_size: int,
                                     channels: int, height: int, width: int, sampling_ratio: int,
                                     aligned: bool) -> torch.Tensor:
    acc = _acc_dtype(grad.dtype)
    grad_input = torch.zeros((batch_size, channels, height, width), dtype=acc, device=grad.device)
    k = rois.shape[0]
    if k == 0 or grad_input.numel() == 0:
        return grad_input.to(grad.dtype)
    rois_acc = rois.to(acc).contiguous()
    cell_mask, has_mask = _cell_mask(masked_boxes, batch_size, height, width, spatial_scale, grad.device)
    kernel = _roi_align_masked_bwd_kernel.for_device(grad.device)
    wrap_triton(kernel)[_grid(k * pooled_height * pooled_width, channels)](
        grad.contiguous(), rois_acc, cell_mask, grad_input, channels, height, width, spatial_scale,
        size_bucket(channels), PH=pooled_height, PW=pooled_width, SAMPLING_RATIO=max(sampling_ratio, 0),
        ALIGNED=aligned, HAS_MASK=has_mask)
    return grad_input.to(grad.dtype)
