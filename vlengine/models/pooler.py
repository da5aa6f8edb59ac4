"""BERT's pooler: dense + tanh on one position (loaded from ``bert.pooler`` of a checkpoint)."""

from __future__ import annotations

import torch
from torch import nn


class Pooler(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        """[B, H] hidden state of [CLS] -> [B, H] pooled."""
        return torch.tanh(self.dense(first_token))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` [B, n, H] over the True entries of ``mask`` [B, n]; zeros for a row with none."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)
