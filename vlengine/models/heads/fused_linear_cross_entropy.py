"""Chunked linear + cross-entropy (Liger-Kernel's idea): the [M, V] logits never exist in full.

The rows are processed ``chunk_size`` at a time; each chunk's logits are made,
turned into its loss and its gradients (softmax - onehot) at once, and dropped.
The gradients w.r.t. the hidden rows, weight and bias are therefore computed in
the forward pass and only scaled in backward: peak extra memory is
chunk_size x V instead of M x V (x2 with the softmax gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_size):
        m = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)   # float32 at least (float64 stays float64)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = grad_bias = None
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, m, chunk_size):
            h = hidden[start:start + chunk_size]
            y = labels[start:start + chunk_size]
            logits = F.linear(h, weight, bias).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, y.unsqueeze(1)).squeeze(1)).sum()
            grad_logits = torch.softmax(logits, -1)          # d(mean loss)/d logits = (p - onehot) / m
            grad_logits[torch.arange(y.numel(), device=y.device), y] -= 1.0
            grad_logits /= m
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
        return (total / m).to(hidden.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        # The loss is almost always the last node (grad 1): skip three passes over [V, H] then.
        if torch.equal(grad_output, torch.ones_like(grad_output)):
            return grad_hidden, grad_weight, grad_bias if ctx.has_bias else None, None, None
        return (grad_hidden * grad_output, grad_weight * grad_output,
                grad_bias * grad_output if ctx.has_bias else None, None, None)


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                               labels: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """mean over rows of cross_entropy(hidden @ weight.T + bias, labels), without materialising all logits.

    Args:
        hidden: [M, H] rows to classify (M >= 1; every label must be a valid class).
        weight: [V, H] output projection (e.g. the tied word embeddings).
        bias: [V] or None.
        labels: [M] int64 in [0, V).
        chunk_size: rows per chunk (memory chunk_size x V in float32).

    Returns:
        Scalar mean loss in ``hidden``'s dtype (accumulated in float32).
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"fused_linear_cross_entropy: hidden [M, H] and weight [V, H] must agree, got "
                         f"{list(hidden.shape)} and {list(weight.shape)}")
    if labels.shape != hidden.shape[:1]:
        raise ValueError(f"fused_linear_cross_entropy: labels must be [{hidden.shape[0]}], got {list(labels.shape)}")
    if hidden.shape[0] == 0:
        raise ValueError("fused_linear_cross_entropy: no rows (select at least one labelled row)")
    if chunk_size < 1:
        raise ValueError(f"fused_linear_cross_entropy: chunk_size must be >= 1, got {chunk_size}")
    return _FusedLinearCrossEntropy.apply(hidden, weight, bias, labels, int(chunk_size))
