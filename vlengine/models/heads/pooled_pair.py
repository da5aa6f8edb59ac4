"""NLVR2's classifier: the pooled outputs of two (image, sentence) encodings concatenated, then
Linear(2H, 2H) -> activation -> LayerNorm -> Linear(2H, classes) (LXMERT, UNITER "pair", SemVLP)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VLConfig
from ..encoder import activation


class PooledPairClassifier(nn.Module):
    """Rows 2i and 2i + 1 of ``pooled`` are the two encodings of example i."""

    def __init__(self, config: VLConfig, num_classes: int = 2):
        super().__init__()
        h2 = 2 * config.hidden_size
        self.dense = nn.Linear(h2, h2)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(h2, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(h2, num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled [2B, H] -> logits [B, classes]."""
        if pooled.dim() != 2 or pooled.shape[0] % 2:
            raise ValueError(f"pooled outputs must be [2B, H] (two rows per example), got {list(pooled.shape)}")
        pairs = pooled.reshape(pooled.shape[0] // 2, 2 * pooled.shape[1])
        return self.classifier(self.LayerNorm(self.act(self.dense(pairs))))
