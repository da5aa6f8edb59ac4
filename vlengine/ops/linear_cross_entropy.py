"""Chunked linear + cross-entropy (Liger-Kernel's idea): the [M, V] logits never exist in full.

A pure-PyTorch op: no compiled or Triton backend, so its descriptor lists only
the reference (``python -m vlengine.info`` shows it among the pure-PyTorch ops).
Its saving is memory, not a kernel: the rows are processed ``chunk_size`` at a
time; each chunk's logits are made, turned into its loss and its gradients
(softmax - onehot) at once, and dropped. The gradients w.r.t. the hidden rows,
weight and bias are therefore computed in the forward pass and only scaled in
backward: peak extra memory is chunk_size x V instead of M x V (x2 with the
softmax gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks, reference
from ._descriptor import OpDescriptor
from ._registry import register


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size, ignore_index):
        m = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)   # float32 at least (float64 stays float64)
        kept = labels != ignore_index
        # The mean is over the kept rows; one host read of their count (0 kept: loss and gradients 0).
        count = max(int(kept.sum()), 1)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = grad_bias = None
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, m, chunk_size):
            h = hidden[start:start + chunk_size]
            keep = kept[start:start + chunk_size]
            y = labels[start:start + chunk_size].masked_fill(~keep, 0)  # any class: its row is zeroed below
            logits = F.linear(h, weight, bias).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            total += ((lse - logits.gather(1, y.unsqueeze(1)).squeeze(1)) * keep).sum()
            grad_logits = torch.softmax(logits, -1)          # d(mean loss)/d logits = (p - onehot) / count
            grad_logits[torch.arange(y.numel(), device=y.device), y] -= 1.0
            grad_logits *= keep.unsqueeze(1).to(acc) / count
            grad_hidden[start:start + chunk_size] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            # The first chunk writes the [V, H] gradient, later ones accumulate in place: no zero-fill
            # and no temporary of the table's size (the table is 23M values for BERT's vocabulary).
            if grad_weight is None:
                grad_weight = grad_logits.t() @ h.to(acc)
                grad_bias = grad_logits.sum(0) if bias is not None else None
            else:
                grad_weight.addmm_(grad_logits.t(), h.to(acc))
                if grad_bias is not None:
                    grad_bias += grad_logits.sum(0)
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype),
                              grad_bias.to(bias.dtype) if bias is not None else None)
        ctx.has_bias = bias is not None
        return (total / count).to(hidden.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        # The loss is almost always the last node (grad 1): skip three passes over [V, H] then.
        if torch.equal(grad_output, torch.ones_like(grad_output)):
            return grad_hidden, grad_weight, grad_bias if ctx.has_bias else None, None, None, None
        return (grad_hidden * grad_output, grad_weight * grad_output,
                grad_bias * grad_output if ctx.has_bias else None, None, None, None)


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                               labels: torch.Tensor, chunk_size: int = 1024, ignore_index: int = -100) -> torch.Tensor:
    """mean over rows of cross_entropy(hidden @ weight.T + bias, labels), without materialising all logits.

    A pure-PyTorch chunked op (no compiled backend): see the module docstring.
    Its oracle is ``vlengine.ops.reference.linear_cross_entropy``.

    Args:
        hidden: [M, H] rows to classify (M >= 1), floating.
        weight: [V, H] output projection (e.g. the tied word embeddings).
        bias: [V] or None.
        labels: [M] integer classes in [0, V), or ``ignore_index`` for rows that
            do not count (the mean is over the other rows, as F.cross_entropy's).
        chunk_size: rows per chunk (memory chunk_size x V in float32).
        ignore_index: the label of rows to skip. When every row is skipped the
            loss is 0 with zero gradients (F.cross_entropy gives NaN).

    Returns:
        Scalar mean loss in ``hidden``'s dtype (accumulated in float32, float64 for float64).
    """
    op = "fused_linear_cross_entropy"
    _checks.check_tensor(op, "hidden", hidden, floating=True)
    _checks.check_tensor(op, "weight", weight, floating=True)
    _checks.check_tensor(op, "labels", labels, ndim=1)
    if bias is not None:
        _checks.check_tensor(op, "bias", bias, ndim=1, floating=True)
    _checks.check_same_device(op, hidden=hidden, weight=weight, bias=bias, labels=labels)
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: hidden [M, H] and weight [V, H] must agree, got "
                         f"{list(hidden.shape)} and {list(weight.shape)}")
    if bias is not None and bias.shape[0] != weight.shape[0]:
        raise ValueError(f"{op}: bias must be [V] = [{weight.shape[0]}], got {list(bias.shape)}")
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"{op}: labels must be [{hidden.shape[0]}], got {list(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{op}: labels must be an integer tensor, got {labels.dtype}")
    if hidden.shape[0] == 0:
        raise ValueError(f"{op}: no rows (select at least one labelled row)")
    if chunk_size < 1:
        raise ValueError(f"{op}: chunk_size must be >= 1, got {chunk_size}")
    if _checks.value_checks_enabled():
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= weight.shape[0]))
        if bad.any():
            row = int(bad.nonzero()[0])
            raise ValueError(f"{op}: labels[{row}] = {int(labels[row])} is not a class in [0, {weight.shape[0]}) "
                             f"nor ignore_index ({ignore_index})")
    return _FusedLinearCrossEntropy.apply(hidden, weight, bias, labels, int(chunk_size), int(ignore_index))


DESCRIPTOR = register(OpDescriptor(
    name="fused_linear_cross_entropy",
    summary="linear + cross-entropy in row chunks, the [M, V] logits never whole (pure PyTorch)",
    reference=reference.linear_cross_entropy,
))
