"""Triton batched IoU: vlengine::box_iou_batched_triton.

One program computes a BLOCK_N x BLOCK_M tile of one image's IoU matrix. The
IoU expression is the one every backend shares (see
vlengine/ops/reference/box_iou.py): same order, correctly rounded float32
division (``div_rn``; Triton's ``/`` is approximate on float32), and launches
without FMA contraction, so thresholds compare the same way as on the CPU.
The backward is closed-form PyTorch, registered by vlengine.ops.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._autotune import Tuning, size_bucket, tuned

# Each program loads BLOCK_N + BLOCK_M boxes and writes BLOCK_N x BLOCK_M IoUs:
# bound by the output's stores, so the choices are the tile shape (wide tiles
# store contiguous rows) and warps; there is no loop to pipeline. Keyed on the
# rounded box counts N and M (small N or M favours a narrow tile). Unmeasured
# defaults: measure when a GPU is lent.
TUNING = Tuning(
    sm_80=(triton.Config({"BLOCK_N": 32, "BLOCK_M": 32}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK_N": 32, "BLOCK_M": 128}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK_N": 64, "BLOCK_M": 64}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK_N": 64, "BLOCK_M": 128}, num_warps=8, num_stages=1)),
    sm_90=(triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK_N": 64, "BLOCK_M": 128}, num_warps=4, num_stages=1),
           triton.Config({"BLOCK_N": 64, "BLOCK_M": 128}, num_warps=8, num_stages=1),
           triton.Config({"BLOCK_N": 128, "BLOCK_M": 128}, num_warps=8, num_stages=1)),
    key=("key_n", "key_m"),
    interpreter=triton.Config({"BLOCK_N": 32, "BLOCK_M": 32}, num_warps=4, num_stages=1),
)


@triton.jit
def pair_iou(ax1, ay1, ax2, ay2, area_a, bx1, by1, bx2, by2, area_b, IS_F64: tl.constexpr):
    """IoU of broadcast box coordinates; 0 where the union is empty (never NaN)."""
    w = tl.maximum(tl.minimum(ax2, bx2) - tl.maximum(ax1, bx1), 0.0)
    h = tl.maximum(tl.minimum(ay2, by2) - tl.maximum(ay1, by1), 0.0)
    inter = w * h
    union = (area_a + area_b) - inter
    positive = union > 0
    safe = tl.where(positive, union, 1.0)
    if IS_F64:
        ratio = inter / safe  # float64 division is IEEE-rounded
    else:
        ratio = tl.math.div_rn(inter, safe)
    return tl.where(positive, ratio, 0.0)


@triton.jit
def load_boxes(ptr, rows, in_range, s_n, s_c):
    """(x1, y1, x2, y2, area) of `rows` of one image; zeros outside `in_range`."""
    base = ptr + rows.to(tl.int64) * s_n
    x1 = tl.load(base, mask=in_range, other=0.0)
    y1 = tl.load(base + s_c, mask=in_range, other=0.0)
    x2 = tl.load(base + 2 * s_c, mask=in_range, other=0.0)
    y2 = tl.load(base + 3 * s_c, mask=in_range, other=0.0)
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


@tuned(TUNING)
@triton.jit(do_not_specialize=["key_n", "key_m"])
def _box_iou_batched_kernel(a_ptr, b_ptr, out_ptr, N, M, sa_b, sa_n, sa_c, sb_b, sb_m, sb_c, key_n, key_m,
                            IS_F64: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    img = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < N
    col_ok = cols < M
    ax1, ay1, ax2, ay2, area_a = load_boxes(a_ptr + img * sa_b, rows, row_ok, sa_n, sa_c)
    bx1, by1, bx2, by2, area_b = load_boxes(b_ptr + img * sb_b, cols, col_ok, sb_m, sb_c)
    iou = pair_iou(ax1[:, None], ay1[:, None], ax2[:, None], ay2[:, None], area_a[:, None],
                   bx1[None, :], by1[None, :], bx2[None, :], by2[None, :], area_b[None, :], IS_F64)
    offsets = img * N * M + rows.to(tl.int64)[:, None] * M + cols[None, :]
    tl.store(out_ptr + offsets, iou, mask=row_ok[:, None] & col_ok[None, :])


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@triton_op("vlengine::box_iou_batched_triton", mutates_args=())
def box_iou_batched_triton(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    bsz, n, m = boxes1.shape[0], boxes1.shape[1], boxes2.shape[1]
    acc = accumulation_dtype(boxes1.dtype)
    out = torch.empty((bsz, n, m), dtype=acc, device=boxes1.device)
    if out.numel() > 0:
        a, b = boxes1.to(acc), boxes2.to(acc)  # any strides: the kernel reads through them
        kernel = _box_iou_batched_kernel.for_device(boxes1.device)
        grid = lambda meta: (bsz, triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(m, meta["BLOCK_M"]))  # noqa: E731
        wrap_triton(kernel)[grid](a, b, out, n, m, *a.stride(), *b.stride(), size_bucket(n), size_bucket(m),
                                  IS_F64=acc == torch.float64, enable_fp_fusion=False)
    return out.to(boxes1.dtype)
