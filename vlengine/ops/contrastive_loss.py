"""Image-text contrastive losses over the whole batch, in memory linear in the batch.

The losses are O(B) functions of three statistics of the logit matrix
z[i, j] = <t_i, v_j> / temperature: its row and column log-sum-exps and its
diagonal. The compiled op ``vlengine::contrastive_loss_stats`` computes them in
tiles (never holding B x B) and recomputes the tiles in its backward; the
losses and the multi-rank collectives are assembled here from the statistics.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import _checks, reference
from ._descriptor import Autograd, OpDescriptor
from ._registry import register

KINDS = ("infonce", "pwcl")
REDUCTIONS = ("mean", "sum", "none")
_CHECK_ROWS = 4096  # rows per chunk of the finiteness check


def contrastive_loss(text: torch.Tensor, image: torch.Tensor, temperature, kind: str = "infonce",
                     normalize: bool = True, reduction: str = "mean", group=None, *,
                     backend: str | None = None) -> torch.Tensor:
    """Contrastive loss of B (sentence, image) embedding pairs, without a B x B matrix.

    Logits are z[i, j] = <t_i, v_j> / temperature (t, v L2-normalised when
    ``normalize``); pair i is the positive of row i and of column i.

    ``kind="infonce"``: the symmetric image-text InfoNCE (CLIP's loss). Pair i's
    loss is 0.5 * (CE(row i -> i) + CE(column i -> i)) =
    0.5 * (logsumexp_j z[i, j] + logsumexp_j z[j, i]) - z[i, i].

    ``kind="pwcl"``: CSS-BERT's pair-wise contrastive loss, one ratio over the batch,
        L = -log( sum_i exp(z[i, i]) / sum_{i != j} exp(z[i, j]) ),
    computed in log space as logsumexp_{i != j} z[i, j] - logsumexp_i z[i, i].
    The paper prints the ratio of raw dot products, sum_i E_i.F_i /
    sum_{i != j} E_i.F_j, which is undefined whenever a sum is negative (cosine
    similarities are): the sums here are over exp(z), as in InfoNCE. PwCL needs
    B >= 2 (the denominator is empty otherwise).

    Args:
        text: [B, d] sentence embeddings (CSS-BERT's E'), any floating dtype;
            float16/bfloat16 are accumulated in float32.
        image: [B, d] image embeddings (F'), same dtype and device.
        temperature: a positive float, or a one-element tensor (a learnable
            temperature gets its gradient).
        kind: "infonce" or "pwcl".
        normalize: L2-normalise each row inside the op (its gradient included).
        reduction: "mean" (over pairs), "sum", or "none" (the [b] per-pair losses;
            infonce only). PwCL is a single batch-level term: "mean" and "sum"
            both return it.
        group: a torch.distributed process group for data parallelism. Each rank
            passes its own b pairs (every rank the same b); the images are
            all-gathered, each rank computes its rows against all B columns,
            and the column statistics are combined with an all-reduce. Every
            rank returns the loss of the whole B = b * world batch ("none": its
            own b pairs' losses), and the gradients of text and image on each
            rank equal those of the single-process loss on the concatenated
            batch. A tensor temperature gets, on each rank, its rows' share of
            the gradient: the shares sum to the single-process gradient, so the
            data-parallel gradient average (DDP, DeepSpeed) scales it like every
            other parameter. Call backward on every rank with the same upstream
            gradient, as data-parallel training does.
        backend: None picks the fastest usable ("cpu" on CPU, "cuda" > "triton" on
            GPU); "reference" materialises the b x B logits (the test oracle).

    Returns:
        A scalar (or [b] for "none") in float32 (float64 for float64 inputs).
    """
    op = "contrastive_loss"
    _check_inputs(op, text, image, kind, reduction)
    world, rank = _group_geometry(op, text, group)
    total = text.shape[0] * world
    if total == 0:
        raise ValueError(f"{op}: the batch is empty (text and image have 0 rows)")
    if kind == "pwcl" and total < 2:
        raise ValueError(f"{op}: kind='pwcl' needs at least 2 pairs (its denominator sums over i != j), got {total}")
    scale = _scale(op, temperature, text)
    chosen = DESCRIPTOR.select(text.device, backend, text.dtype)

    if group is None:
        columns, offset = image, 0
    else:
        columns, offset = _GatherRows.apply(image, group), rank * text.shape[0]
    pwcl = kind == "pwcl"
    row_lse, col_lse, diag = _stats(chosen, text, columns, scale, offset, normalize, pwcl, not pwcl)

    if pwcl:
        off_diagonal, positives = torch.logsumexp(row_lse, 0), torch.logsumexp(diag, 0)
        if group is None:
            return off_diagonal - positives
        # Each rank owns 1/world of the batch-level term; the sum over ranks is the loss.
        off_diagonal = _AllReduceLogSumExp.apply(off_diagonal, group)
        positives = _AllReduceLogSumExp.apply(positives, group)
        return _AllReduceSum.apply((off_diagonal - positives) / world, group)

    if group is not None:
        col_lse = _AllReduceLogSumExp.apply(col_lse, group).narrow(0, offset, text.shape[0])
    per_pair = 0.5 * (row_lse + col_lse) - diag
    if reduction == "none":
        return per_pair
    loss = per_pair.sum()
    if group is not None:
        loss = _AllReduceSum.apply(loss, group)
    return loss / total if reduction == "mean" else loss


def _check_inputs(op: str, text, image, kind: str, reduction: str) -> None:
    _checks.check_tensor(op, "text", text, ndim=2, floating=True)
    _checks.check_tensor(op, "image", image, ndim=2, floating=True)
    _checks.check_same_device(op, text=text, image=image)
    if text.dtype != image.dtype:
        raise TypeError(f"{op}: text and image must have one dtype, got {text.dtype} and {image.dtype}")
    if text.shape[0] != image.shape[0]:
        raise ValueError(f"{op}: text and image must hold the same number of pairs B, got "
                         f"{text.shape[0]} and {image.shape[0]}")
    if text.shape[1] != image.shape[1]:
        raise ValueError(f"{op}: text and image must have the same embedding size d, got "
                         f"{text.shape[1]} and {image.shape[1]}")
    if kind not in KINDS:
        raise ValueError(f"{op}: kind must be one of {KINDS}, got {kind!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if kind == "pwcl" and reduction == "none":
        raise ValueError(f"{op}: kind='pwcl' is one batch-level ratio; reduction='none' has no per-pair value")
    if _checks.value_checks_enabled():
        for name, t in (("text", text), ("image", image)):
            # In row chunks: torch.isfinite makes a full-size float copy (abs) and two bool
            # masks, 1.7x the input at once, which would be the op's peak memory.
            for r0 in range(0, t.shape[0], _CHECK_ROWS):
                finite = torch.isfinite(t[r0:r0 + _CHECK_ROWS]).all(dim=1)
                if not bool(finite.all()):
                    row = r0 + int((~finite).nonzero()[0])
                    raise ValueError(f"{op}: {name}[{row}] has a non-finite value (NaN or inf)")


def _scale(op: str, temperature, like: torch.Tensor) -> torch.Tensor:
    """1 / temperature as a 0-dim tensor in the accumulation dtype (differentiable for tensors)."""
    acc = torch.float64 if like.dtype == torch.float64 else torch.float32
    if isinstance(temperature, torch.Tensor):
        if temperature.numel() != 1 or not temperature.is_floating_point():
            raise ValueError(f"{op}: temperature must be a float or a one-element floating tensor, got shape "
                             f"{tuple(temperature.shape)} of {temperature.dtype}")
        if temperature.device != like.device:
            raise RuntimeError(f"{op}: temperature is on {temperature.device} but the embeddings on {like.device}")
        if _checks.value_checks_enabled():
            value = float(temperature.detach())
            if not (value > 0 and value != float("inf")):
                raise ValueError(f"{op}: temperature must be positive and finite, got {value}")
        return (1.0 / temperature.reshape(())).to(acc)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"{op}: temperature must be a float or a tensor, got {type(temperature).__name__}")
    if not (temperature > 0 and temperature != float("inf")):
        raise ValueError(f"{op}: temperature must be positive and finite, got {temperature}")
    return torch.tensor(1.0 / temperature, dtype=acc, device=like.device)


def _group_geometry(op: str, text: torch.Tensor, group) -> tuple[int, int]:
    """(world size, rank) of ``group``; checks every rank holds the same number of pairs."""
    if group is None:
        return 1, 0
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"{op}: group was given but torch.distributed is not initialised")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    counts = [torch.zeros(1, dtype=torch.int64, device=text.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([text.shape[0]], dtype=torch.int64, device=text.device), group=group)
    counts = [int(c) for c in counts]
    if len(set(counts)) != 1:
        raise ValueError(f"{op}: every rank must hold the same number of pairs, got {counts} (by rank)")
    return world, rank


def _stats(chosen: str, text, image, scale, offset: int, normalize: bool, exclude_diagonal: bool,
           with_columns: bool):
    if chosen == "reference":
        return reference.contrastive_loss_stats(text, image, scale, offset, normalize, exclude_diagonal, with_columns)
    return DESCRIPTOR.op(chosen)(text, image, scale, offset, normalize, exclude_diagonal, with_columns)


# ---- the collectives, each with the gradient its use here needs ----

class _GatherRows(torch.autograd.Function):
    """All-gather of every rank's rows. Backward: sum every rank's gradient of the
    gathered tensor, then keep this rank's rows (a reduce-scatter)."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group, ctx.rows = group, x.shape[0]
        world = dist.get_world_size(group)
        out = x.new_empty((world * x.shape[0],) + tuple(x.shape[1:]))
        dist.all_gather_into_tensor(out, x.contiguous(), group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        if dist.get_backend(ctx.group) == "nccl":  # gloo has no reduce-scatter
            out = grad.new_empty((ctx.rows,) + tuple(grad.shape[1:]))
            dist.reduce_scatter_tensor(out, grad, group=ctx.group)
            return out, None
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        rank = dist.get_rank(ctx.group)
        return grad.narrow(0, rank * ctx.rows, ctx.rows), None


class _AllReduceLogSumExp(torch.autograd.Function):
    """log(sum over ranks of exp(x)), element-wise and overflow-free. Backward: each
    rank's uses of the result are distinct terms of the loss, so their gradients
    are summed over ranks before the softmax weight of this rank's part."""

    @staticmethod
    def forward(ctx, x, group):
        shift = x.detach().clone()
        dist.all_reduce(shift, op=dist.ReduceOp.MAX, group=group)
        shift = shift.masked_fill(torch.isinf(shift), 0)  # all -inf: log(0) = -inf below, no inf - inf
        total = (x.detach() - shift).exp()
        dist.all_reduce(total, group=group)
        out = shift + total.log()
        ctx.group = group
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        weight = torch.where(torch.isinf(out), torch.zeros_like(out), (x - out).exp())
        return grad * weight, None


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks. Backward passes the gradient to this rank's term unchanged."""

    @staticmethod
    def forward(ctx, x, group):
        out = x.detach().clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# ---- the descriptor: fake kernels and autograd of vlengine::contrastive_loss_stats[_triton] ----

def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _fake_stats(text, image, scale, diagonal_offset, normalize, exclude_diagonal, with_columns):
    acc = _acc_dtype(text)
    columns = image.shape[0] if with_columns else 0
    return (text.new_empty((text.shape[0],), dtype=acc), text.new_empty((columns,), dtype=acc),
            text.new_empty((text.shape[0],), dtype=acc))


def _fake_stats_backward(grad_row_lse, grad_col_lse, grad_diag, text, image, scale, row_lse, col_lse,
                         diagonal_offset, normalize, exclude_diagonal, with_columns):
    return torch.empty_like(text), torch.empty_like(image), torch.empty_like(scale)


def _setup_context(ctx, inputs, output):
    text, image, scale, offset, normalize, exclude_diagonal, with_columns = inputs
    row_lse, col_lse, _ = output
    ctx.save_for_backward(text, image, scale, row_lse, col_lse)
    ctx.params = (offset, normalize, exclude_diagonal, with_columns)


def _backward(ops, ctx, grad_row, grad_col, grad_diag):
    text, image, scale, row_lse, col_lse = ctx.saved_tensors
    grads = [g if g is not None else torch.zeros_like(t)
             for g, t in ((grad_row, row_lse), (grad_col, col_lse), (grad_diag, row_lse))]
    grad_text, grad_image, grad_scale = ops.contrastive_loss_stats_backward(
        *grads, text, image, scale, row_lse, col_lse, *ctx.params)
    return grad_text, grad_image, grad_scale, None, None, None, None


# The Triton op gets the same explicit fakes as the C++ op: without them triton_op would trace
# its launcher as the fake, which under Triton's CPU interpreter tries to run the kernels.
DESCRIPTOR = register(OpDescriptor(
    name="contrastive_loss",
    summary="InfoNCE / CSS-BERT PwCL over the batch from tiled statistics, no B x B matrix",
    reference=reference.contrastive_loss,
    library_op="contrastive_loss_stats",
    fakes={"contrastive_loss_stats": _fake_stats, "contrastive_loss_stats_backward": _fake_stats_backward},
    autograd={"contrastive_loss_stats": Autograd(_setup_context, _backward)},
    kernel_module="vlengine.kernels.contrastive_loss",
))
