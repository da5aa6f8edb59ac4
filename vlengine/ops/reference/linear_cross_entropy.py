"""Materialised linear + cross-entropy: the oracle of vlengine.ops.fused_linear_cross_entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` over the rows whose label is not ``ignore_index``.

    Builds all [M, V] logits, in float32 at least (float64 stays float64).
    When every row is ignored the loss is 0 (F.cross_entropy would give 0/0 = NaN).
    """
    acc = torch.promote_types(hidden.dtype, torch.float32)
    logits = F.linear(hidden, weight, bias).to(acc)
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum().clamp(min=1)
    return (total / count).to(hidden.dtype)
