"""Triton IoU-neighbourhood masking: vlengine::iou_neighbourhood_mask_triton.

One program takes BLOCK_I boxes of one image and sweeps that image's boxes
BLOCK_J at a time, keeping only valid anchors: the BLOCK_I x BLOCK_J IoU tile
lives in registers and is reduced to one "hit" bit per box at once, so memory
is O(B * N) and the B x N x N IoU tensor never exists. The IoU expression is
the one shared by every backend (kernels/box_iou_batched.py).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._autotune import Tuning, size_bucket, tuned
from .box_iou_batched import accumulation_dtype, load_boxes, pair_iou

# Each program sweeps its image's N boxes BLOCK_J at a time against its BLOCK_I
# rows, in registers: compute-bound on the IoU arithmetic with small loads, so
# the choices are the tile shape (BLOCK_I x BLOCK_J values live per program),
# warps, and stages to prefetch the next column block. Keyed on the rounded
# boxes per image N (the grid is B x N / BLOCK_I: few boxes favour small
# BLOCK_I to fill the GPU). Unmeasured defaults: measure when a GPU is lent.
TUNING = Tuning(
    sm_80=(triton.Config({"BLOCK_I": 32, "BLOCK_J": 32}, num_warps=2, num_stages=2),
           triton.Config({"BLOCK_I": 32, "BLOCK_J": 64}, num_warps=4, num_stages=2),
           triton.Config({"BLOCK_I": 64, "BLOCK_J": 64}, num_warps=4, num_stages=3),
           triton.Config({"BLOCK_I": 128, "BLOCK_J": 32}, num_warps=4, num_stages=3)),
    sm_90=(triton.Config({"BLOCK_I": 32, "BLOCK_J": 64}, num_warps=4, num_stages=2),
           triton.Config({"BLOCK_I": 64, "BLOCK_J": 64}, num_warps=4, num_stages=3),
           triton.Config({"BLOCK_I": 64, "BLOCK_J": 128}, num_warps=8, num_stages=3),
           triton.Config({"BLOCK_I": 128, "BLOCK_J": 64}, num_warps=8, num_stages=3)),
    key=("key_n",),
    interpreter=triton.Config({"BLOCK_I": 32, "BLOCK_J": 32}, num_warps=4, num_stages=1),
)


@tuned(TUNING)
@triton.jit(do_not_specialize=["key_n"])
def _iou_neighbourhood_mask_kernel(box_ptr, valid_ptr, anchor_ptr, threshold_ptr, out_ptr, N,
                                   s_b, s_n, s_c, v_b, v_n, a_b, a_n, key_n, INCLUSIVE: tl.constexpr,
                                   IS_F64: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    img = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    row_ok = rows < N
    boxes = box_ptr + img * s_b
    valid_i = tl.load(valid_ptr + img * v_b + rows * v_n, mask=row_ok, other=0) != 0
    anchor_i = tl.load(anchor_ptr + img * a_b + rows * a_n, mask=row_ok, other=0) != 0
    threshold = tl.load(threshold_ptr)
    ax1, ay1, ax2, ay2, area_a = load_boxes(boxes, rows, row_ok, s_n, s_c)
    hit = anchor_i
    for start in range(0, N, BLOCK_J):
        cols = start + tl.arange(0, BLOCK_J)
        col_ok = cols < N
        is_anchor = (tl.load(valid_ptr + img * v_b + cols * v_n, mask=col_ok, other=0) != 0) & \
                    (tl.load(anchor_ptr + img * a_b + cols * a_n, mask=col_ok, other=0) != 0)
        bx1, by1, bx2, by2, area_b = load_boxes(boxes, cols, col_ok & is_anchor, s_n, s_c)
        iou = pair_iou(ax1[:, None], ay1[:, None], ax2[:, None], ay2[:, None], area_a[:, None],
                       bx1[None, :], by1[None, :], bx2[None, :], by2[None, :], area_b[None, :], IS_F64)
        if INCLUSIVE:
            passes = iou >= threshold
        else:
            passes = iou > threshold
        passes = passes & is_anchor[None, :]
        hit = hit | (tl.max(passes.to(tl.int32), axis=1) > 0)
    out = (hit & valid_i).to(tl.uint8)
    tl.store(out_ptr + img * N + rows, out, mask=row_ok)


@triton_op("vlengine::iou_neighbourhood_mask_triton", mutates_args=())
def iou_neighbourhood_mask_triton(boxes: torch.Tensor, valid: torch.Tensor, anchors: torch.Tensor,
                                  threshold: float, inclusive: bool) -> torch.Tensor:
    bsz, n = valid.shape
    out = torch.empty((bsz, n), dtype=torch.uint8, device=valid.device)
    if out.numel() > 0:
        acc = accumulation_dtype(boxes.dtype)
        b = boxes.to(acc)
        # The threshold travels as a tensor of the accumulation dtype: a Python float
        # argument would arrive as float32 even when the boxes are float64.
        limit = torch.full((1,), threshold, dtype=acc, device=boxes.device)
        v, a = valid.view(torch.uint8), anchors.view(torch.uint8)
        kernel = _iou_neighbourhood_mask_kernel.for_device(boxes.device)
        wrap_triton(kernel)[lambda meta: (bsz, triton.cdiv(n, meta["BLOCK_I"]))](
            b, v, a, limit, out, n, *b.stride(), *v.stride(), *a.stride(), size_bucket(n),
            INCLUSIVE=bool(inclusive), IS_F64=acc == torch.float64, enable_fp_fusion=False)
    return out.view(torch.bool)
