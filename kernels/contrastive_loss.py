"""Triton kernels of the tiled contrastive-loss statistics (vlengine::contrastive_loss_stats_triton).

Same contract as the C++ op (csrc/ops/contrastive_loss.cpp): for logits
z[i, j] = scale * <t_i, v_j> (rows L2-normalised when asked) it returns the
row and column log-sum-exps and the diagonal z[i, i + offset], and its
backward op the gradients of text, image and scale. No program holds more than
a [BLOCK_M, BLOCK_N] tile of logits:

- ``_row_lse_kernel``: one program per block of rows, online log-sum-exp over
  the column blocks. The column statistics are the row statistics of the
  transposed problem, so the same kernel runs again with text and image swapped.
- ``_grad_rows_kernel``: one program per block of rows; it recomputes each
  logit tile, forms dL/dz and accumulates dL/dz @ v into its own rows of a
  float32 buffer (no atomics: deterministic). The image gradient is again the
  same kernel on the transposed problem.

This recomputes more than the CUDA C++ backend (which feeds cuBLAS with tiles):
6 B^2 d multiply-adds for forward + backward instead of 4. Its value is
portability (any sm_80+ GPU Triton supports) and a second, independent
implementation for the tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch._subclasses.fake_tensor import is_fake
from torch.library import triton_op, wrap_triton

from ._autotune import Tuning, interpreted, size_bucket, tuned

NORM_EPS = 1e-12  # torch.nn.functional.normalize's eps


@triton.jit
def _logit_tile(x_ptr, y_ptr, rows, cols, n, m, d, stride_x, stride_y,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IS_FP64: tl.constexpr,
                UPCAST: tl.constexpr):
    """<x_r, y_c> for a [BLOCK_M, BLOCK_N] tile, accumulated over d in BLOCK_K slices."""
    if IS_FP64:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float64)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ks = tl.arange(0, BLOCK_K)
    for k0 in range(0, d, BLOCK_K):
        kk = k0 + ks
        a = tl.load(x_ptr + rows[:, None] * stride_x + kk[None, :], mask=(rows[:, None] < n) & (kk[None, :] < d),
                    other=0.0)
        b = tl.load(y_ptr + cols[:, None] * stride_y + kk[None, :], mask=(cols[:, None] < m) & (kk[None, :] < d),
                    other=0.0)
        if UPCAST:  # Triton's CPU interpreter multiplies bfloat16 tiles wrongly (numpy has no bfloat16)
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        # "ieee": float32 inputs are multiplied in float32, as torch does by default (no TF32).
        acc = tl.dot(a, tl.trans(b), acc, input_precision="ieee")
    return acc


# Both kernels are tl.dot loops over d (the logit tile) inside a loop over the
# column blocks: compute-bound, so the choices are the matmul's: tile shape,
# warps, and pipeline stages (the next d-slice's loads overlap this one's dot;
# sm_90's larger shared memory takes deeper pipelines and 64-wide d-slices).
# Keyed on the rounded row count n (the grid: few rows favour BLOCK_M = 64 to
# fill the GPU), column count m (the loop length) and width d. The backward's
# extra BLOCK_D is the width of its dL/dz @ y update; it accumulates into
# out_ptr, zeroed before each timed run. Every list keeps the interpreter's
# 64 x 64 x 32 tile, which fits float64 too. Unmeasured defaults: measure when
# a GPU is lent.
_SIZE_KEY = ("key_n", "key_m", "key_d")


def _tile(m, n, k, warps, stages, d=None):
    sizes = {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k} | ({"BLOCK_D": d} if d else {})
    return triton.Config(sizes, num_warps=warps, num_stages=stages)


ROW_LSE_TUNING = Tuning(
    sm_80=(_tile(64, 64, 32, 4, 3), _tile(128, 64, 32, 4, 3), _tile(64, 128, 32, 4, 3),
           _tile(128, 128, 32, 8, 3)),
    sm_90=(_tile(64, 64, 32, 4, 3), _tile(128, 64, 64, 4, 4), _tile(128, 128, 64, 8, 3),
           _tile(128, 256, 64, 8, 3)),
    key=_SIZE_KEY,
    interpreter=_tile(64, 64, 32, 4, 1),
)
GRAD_ROWS_TUNING = Tuning(
    sm_80=(_tile(64, 64, 32, 4, 3, d=64), _tile(128, 64, 32, 4, 3, d=64), _tile(64, 64, 32, 4, 3, d=128),
           _tile(128, 64, 32, 8, 3, d=128)),
    sm_90=(_tile(64, 64, 32, 4, 3, d=64), _tile(128, 64, 64, 4, 4, d=64), _tile(128, 64, 64, 8, 3, d=128),
           _tile(128, 128, 64, 8, 3, d=128)),
    key=_SIZE_KEY,
    interpreter=_tile(64, 64, 32, 4, 1, d=64),
    reset_to_zero=("out_ptr",),
)


@tuned(ROW_LSE_TUNING)
@triton.jit(do_not_specialize=["key_n", "key_m", "key_d"])
def _row_lse_kernel(x_ptr, y_ptr, inv_x_ptr, inv_y_ptr, scale_ptr, lse_ptr, diag_ptr,
                    n, m, d, offset, stride_x, stride_y, key_n, key_m, key_d,
                    EXCLUDE: tl.constexpr, WRITE_DIAG: tl.constexpr, IS_FP64: tl.constexpr, UPCAST: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n
    scale = tl.load(scale_ptr)
    row_factor = tl.load(inv_x_ptr + rows, mask=row_ok, other=0.0)
    run_max = tl.full((BLOCK_M,), float("-inf"), dtype=row_factor.dtype)
    run_sum = tl.zeros((BLOCK_M,), dtype=row_factor.dtype)
    diag = tl.zeros((BLOCK_M,), dtype=row_factor.dtype)
    for c0 in range(0, m, BLOCK_N):
        cols = c0 + tl.arange(0, BLOCK_N)
        col_ok = cols < m
        col_factor = tl.load(inv_y_ptr + cols, mask=col_ok, other=0.0)
        z = _logit_tile(x_ptr, y_ptr, rows, cols, n, m, d, stride_x, stride_y, BLOCK_M, BLOCK_N, BLOCK_K, IS_FP64,
                        UPCAST)
        # (1/|x| * 1/|y|) * scale: the same rounding when the kernel runs on the transposed problem.
        z = z * (row_factor[:, None] * col_factor[None, :]) * scale
        is_diag = cols[None, :] == rows[:, None] + offset
        if WRITE_DIAG:
            diag += tl.sum(tl.where(is_diag, z, 0.0), axis=1)
        valid = col_ok[None, :]
        if EXCLUDE:
            valid = valid & (~is_diag)
        z = tl.where(valid, z, float("-inf"))
        new_max = tl.maximum(run_max, tl.max(z, axis=1))
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # nothing seen yet: no inf - inf
        run_sum = run_sum * tl.exp(run_max - shift) + tl.sum(tl.exp(z - shift[:, None]), axis=1)
        run_max = new_max
    tl.store(lse_ptr + rows, run_max + tl.log(run_sum), mask=row_ok)
    if WRITE_DIAG:
        tl.store(diag_ptr + rows, diag, mask=row_ok)


@tuned(GRAD_ROWS_TUNING)
@triton.jit(do_not_specialize=["key_n", "key_m", "key_d"])
def _grad_rows_kernel(x_ptr, y_ptr, inv_x_ptr, inv_y_ptr, scale_ptr,
                      row_lse_ptr, row_grad_ptr, col_lse_ptr, col_grad_ptr, diag_grad_ptr, out_ptr,
                      n, m, d, offset, stride_x, stride_y, stride_out, key_n, key_m, key_d,
                      EXCLUDE: tl.constexpr, HAS_ROW: tl.constexpr, HAS_COL: tl.constexpr,
                      DIAG_BY_ROW: tl.constexpr, IS_FP64: tl.constexpr, UPCAST: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[r] += sum_c dL/dz[r, c] * y_c / ||y_c||, for this program's rows (scale applied by the caller)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n
    scale = tl.load(scale_ptr)
    row_factor = tl.load(inv_x_ptr + rows, mask=row_ok, other=0.0)
    if HAS_ROW:  # lse = +inf marks an empty row: its softmax term is 0
        row_lse = tl.load(row_lse_ptr + rows, mask=row_ok, other=float("inf"))
        row_grad = tl.load(row_grad_ptr + rows, mask=row_ok, other=0.0)
    ds = tl.arange(0, BLOCK_D)
    for c0 in range(0, m, BLOCK_N):
        cols = c0 + tl.arange(0, BLOCK_N)
        col_ok = cols < m
        col_factor = tl.load(inv_y_ptr + cols, mask=col_ok, other=0.0)
        z = _logit_tile(x_ptr, y_ptr, rows, cols, n, m, d, stride_x, stride_y, BLOCK_M, BLOCK_N, BLOCK_K, IS_FP64,
                        UPCAST)
        z = z * (row_factor[:, None] * col_factor[None, :]) * scale
        is_diag = (cols[None, :] == rows[:, None] + offset) & col_ok[None, :] & row_ok[:, None]
        valid = col_ok[None, :] & row_ok[:, None]
        if EXCLUDE:
            valid = valid & (~is_diag)
        # Entries outside the sums become -inf first: exp(z - lse) of an excluded diagonal
        # entry could overflow (its z is not part of the lse).
        z = tl.where(valid, z, float("-inf"))
        g = tl.zeros_like(z)
        if HAS_ROW:
            g += row_grad[:, None] * tl.exp(z - row_lse[:, None])
        if HAS_COL:
            col_lse = tl.load(col_lse_ptr + cols, mask=col_ok, other=float("inf"))
            col_grad = tl.load(col_grad_ptr + cols, mask=col_ok, other=0.0)
            g += col_grad[None, :] * tl.exp(z - col_lse[None, :])
        if DIAG_BY_ROW:
            diag_grad = tl.load(diag_grad_ptr + rows, mask=row_ok, other=0.0)
            g += tl.where(is_diag, diag_grad[:, None], 0.0)
        else:
            diag_grad = tl.load(diag_grad_ptr + cols, mask=col_ok, other=0.0)
            g += tl.where(is_diag, diag_grad[None, :], 0.0)
        for d0 in range(0, d, BLOCK_D):
            dd = d0 + ds
            y = tl.load(y_ptr + cols[:, None] * stride_y + dd[None, :], mask=col_ok[:, None] & (dd[None, :] < d),
                        other=0.0)
            y = y.to(g.dtype) * col_factor[:, None]
            out_mask = row_ok[:, None] & (dd[None, :] < d)
            out_ptrs = out_ptr + rows[:, None] * stride_out + dd[None, :]
            acc = tl.load(out_ptrs, mask=out_mask, other=0.0)
            acc = tl.dot(g, y, acc, input_precision="ieee")
            tl.store(out_ptrs, acc, mask=out_mask)


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _inverse_norms(x: torch.Tensor, normalize: bool, acc: torch.dtype) -> torch.Tensor:
    if not normalize:
        return torch.ones(x.shape[0], dtype=acc, device=x.device)
    return torch.linalg.vector_norm(x, dim=1, dtype=acc).clamp_min(NORM_EPS).reciprocal()


def _safe_lse(lse: torch.Tensor) -> torch.Tensor:
    """-inf (an empty sum) -> +inf, so that the kernels' exp(z - lse) is 0 there."""
    return lse.masked_fill(lse == float("-inf"), float("inf")).contiguous()


def _launchable(t: torch.Tensor) -> bool:
    """False while tracing with fake tensors under Triton's CPU interpreter, which would run the
    kernel on them (on a GPU, wrap_triton records the launch instead); the outputs' shapes
    and dtypes are all a fake trace needs."""
    return not (is_fake(t) and interpreted())


def _grid(rows: int):
    return lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]),)


def _size_key(n: int, m: int, d: int) -> tuple[int, int, int]:
    return size_bucket(n), size_bucket(m), size_bucket(d)


@triton_op("vlengine::contrastive_loss_stats_triton", mutates_args=())
def contrastive_loss_stats_triton(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor, diagonal_offset: int,
                                  normalize: bool, exclude_diagonal: bool,
                                  with_columns: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    acc = _acc_dtype(text)
    t, v = text.contiguous(), image.contiguous()
    b, n_cols, d = t.shape[0], v.shape[0], t.shape[1]
    inv_t, inv_v = _inverse_norms(t, normalize, acc), _inverse_norms(v, normalize, acc)
    scale_acc = scale.to(acc).reshape(1).contiguous()
    row_lse = torch.empty(b, dtype=acc, device=t.device)
    diag = torch.zeros(b, dtype=acc, device=t.device)
    col_lse = torch.empty(n_cols if with_columns else 0, dtype=acc, device=t.device)
    fp64 = acc == torch.float64
    launch = _launchable(t)
    if launch and b > 0:
        wrap_triton(_row_lse_kernel.for_device(t.device))[_grid(b)](
            t, v, inv_t, inv_v, scale_acc, row_lse, diag, b, n_cols, d, diagonal_offset, t.stride(0), v.stride(0),
            *_size_key(b, n_cols, d), EXCLUDE=exclude_diagonal, WRITE_DIAG=True, IS_FP64=fp64,
            UPCAST=interpreted() and t.element_size() == 2)
    if launch and with_columns and n_cols > 0:
        # Column statistics = row statistics of the transposed problem (diagonal at row - offset).
        wrap_triton(_row_lse_kernel.for_device(t.device))[_grid(n_cols)](
            v, t, inv_v, inv_t, scale_acc, col_lse, diag, n_cols, b, d, -diagonal_offset, v.stride(0), t.stride(0),
            *_size_key(n_cols, b, d), EXCLUDE=exclude_diagonal, WRITE_DIAG=False, IS_FP64=fp64,
            UPCAST=interpreted() and t.element_size() == 2)
    return row_lse, col_lse, diag


def _finish_gradient(acc_grad: torch.Tensor, x: torch.Tensor, inv: torch.Tensor, scale: torch.Tensor,
                     normalize: bool, chunk: int = 8192) -> torch.Tensor:
    """Unscaled sum_j dL/dz_ij * y_j -> (dL/dx, <x/||x||, that sum> summed), in row chunks (bounded memory)."""
    share = acc_grad.new_zeros(())
    for r0 in range(0, x.shape[0], chunk):
        g = acc_grad[r0:r0 + chunk]
        inv_c = inv[r0:r0 + chunk, None]
        xn = x[r0:r0 + chunk].to(g.dtype) * inv_c
        share += (xn * g).sum()
        g.mul_(scale)
        if normalize:
            dot = (xn * g).sum(1, keepdim=True)
            dot.masked_fill_(inv_c >= 1.0 / NORM_EPS, 0)  # rows shorter than eps: divided by the constant eps
            g.sub_(xn * dot).mul_(inv_c)
    return share


@triton_op("vlengine::contrastive_loss_stats_backward_triton", mutates_args=())
def contrastive_loss_stats_backward_triton(grad_row_lse: torch.Tensor, grad_col_lse: torch.Tensor,
                                           grad_diag: torch.Tensor, text: torch.Tensor, image: torch.Tensor,
                                           scale: torch.Tensor, row_lse: torch.Tensor, col_lse: torch.Tensor,
                                           diagonal_offset: int, normalize: bool, exclude_diagonal: bool,
                                           with_columns: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    acc = _acc_dtype(text)
    t, v = text.contiguous(), image.contiguous()
    b, n_cols, d = t.shape[0], v.shape[0], t.shape[1]
    inv_t, inv_v = _inverse_norms(t, normalize, acc), _inverse_norms(v, normalize, acc)
    scale_acc = scale.to(acc).reshape(1).contiguous()
    r_lse, r_grad = _safe_lse(row_lse.to(acc)), grad_row_lse.to(acc).contiguous()
    c_lse, c_grad = _safe_lse(col_lse.to(acc)), grad_col_lse.to(acc).contiguous()
    d_grad = grad_diag.to(acc).contiguous()
    grad_t = torch.zeros((b, d), dtype=acc, device=t.device)
    grad_v = torch.zeros((n_cols, d), dtype=acc, device=t.device)
    fp64 = acc == torch.float64
    if _launchable(t) and b > 0 and n_cols > 0 and d > 0:
        kernel = _grad_rows_kernel.for_device(t.device)
        wrap_triton(kernel)[_grid(b)](
            t, v, inv_t, inv_v, scale_acc, r_lse, r_grad, c_lse, c_grad, d_grad, grad_t,
            b, n_cols, d, diagonal_offset, t.stride(0), v.stride(0), grad_t.stride(0), *_size_key(b, n_cols, d),
            EXCLUDE=exclude_diagonal, HAS_ROW=True, HAS_COL=with_columns, DIAG_BY_ROW=True, IS_FP64=fp64,
            UPCAST=interpreted() and t.element_size() == 2)
        wrap_triton(kernel)[_grid(n_cols)](
            v, t, inv_v, inv_t, scale_acc, c_lse, c_grad, r_lse, r_grad, d_grad, grad_v,
            n_cols, b, d, -diagonal_offset, v.stride(0), t.stride(0), grad_v.stride(0), *_size_key(n_cols, b, d),
            EXCLUDE=exclude_diagonal, HAS_ROW=with_columns, HAS_COL=True, DIAG_BY_ROW=False, IS_FP64=fp64,
            UPCAST=interpreted() and t.element_size() == 2)
    scale_value = scale_acc.reshape(())
    grad_scale = _finish_gradient(grad_t, t, inv_t, scale_value, normalize)
    _finish_gradient(grad_v, v, inv_v, scale_value, normalize)
    return grad_t.to(text.dtype), grad_v.to(image.dtype), grad_scale.to(scale.dtype).reshape(scale.shape)
