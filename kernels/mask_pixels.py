"""Triton pixel masking: vlengine::mask_pixels_triton and its in-place form.

One program covers a block of pixels of one (image, channel) plane and reads
the [N, H, W] byte plane of masked pixels (built by this package's
own cell_mask.py), so out of place the copy and the fill are one
pass over the images; in place only masked pixels are stored.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._autotune import Tuning, size_bucket, tuned
from .cell_mask import masked_cell_plane

# A streaming copy (out of place) or a sparse store (in place): memory-bound, so
# the choices are pixels per program and warps; there is no loop to pipeline.
# Keyed on the plane size H * W (the grid's second axis). Unmeasured defaults:
# measure when a GPU is lent.
TUNING = Tuning(
    sm_80=(triton.Config({"BLOCK": 1024}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK": 2048}, num_warps=8, num_stages=1),
           triton.Config({"BLOCK": 4096}, num_warps=8, num_stages=1)),
    sm_90=(triton.Config({"BLOCK": 1024}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK": 2048}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK": 4096}, num_warps=8, num_stages=1),
           triton.Config({"BLOCK": 8192}, num_warps=16, num_stages=1)),
    key=("key_hw",),
    interpreter=triton.Config({"BLOCK": 1024}, num_warps=4, num_stages=1),
)


@tuned(TUNING)
@triton.jit(do_not_specialize=["key_hw"])
def _mask_pixels_kernel(src_ptr, dst_ptr, mask_ptr, fill_ptr, C, H, W, s_n, s_c, s_h, s_w,
                        d_n, d_c, d_h, d_w, key_hw, INPLACE: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0)
    n = (plane // C).to(tl.int64)
    c = plane % C
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < H * W
    y = offs // W
    x = offs % W
    covered = tl.load(mask_ptr + n * H * W + offs, mask=inb, other=0) != 0
    value = tl.load(fill_ptr + c)
    dst = dst_ptr + n * d_n + c * d_c + y * d_h + x * d_w
    if INPLACE:
        tl.store(dst, tl.full([BLOCK], 0, dtype=dst_ptr.dtype.element_ty) + value, mask=inb & covered)
    else:
        v = tl.load(src_ptr + n * s_n + c * s_c + y * s_h + x * s_w, mask=inb, other=0.0)
        tl.store(dst, tl.where(covered, value, v), mask=inb)


def _launch(src: torch.Tensor, dst: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor, inplace: bool) -> None:
    n, c, h, w = src.shape
    if boxes.shape[0] == 0 and inplace or src.numel() == 0:
        return
    mask = masked_cell_plane(boxes, n, h, w)
    fill_c = fill.to(src.dtype).expand(c).contiguous()
    kernel = _mask_pixels_kernel.for_device(src.device)
    wrap_triton(kernel)[lambda meta: (n * c, triton.cdiv(h * w, meta["BLOCK"]))](
        src, dst, mask, fill_c, c, h, w, *src.stride(), *dst.stride(), size_bucket(h * w), INPLACE=inplace)


@triton_op("vlengine::mask_pixels_triton", mutates_args=())
def mask_pixels_triton(images: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(images)
    _launch(images, out, boxes, fill, inplace=False)
    return out


@triton_op("vlengine::mask_pixels_triton_", mutates_args={"images"})
def mask_pixels_triton_(images: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor) -> None:
    _launch(images, images, boxes, fill, inplace=True)
