"""One score per region (referring-expression grounding): VL-BERT's RefCOCO+ readout of each RoI output
through the MVRC transform, dropout and Linear(H, 1), or a single Linear(H, 1)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VLConfig
from .transform import PredictionTransform

REGION_HEADS = ("transform", "linear")


class RegionScoreHead(nn.Module):
    """``kind="transform"``: transform (dense -> activation -> LayerNorm) -> Dropout -> Linear(H, 1)
    (VL-BERT); ``kind="linear"``: Dropout -> Linear(H, 1). [B, R, H] region outputs -> [B, R] scores."""

    def __init__(self, config: VLConfig, kind: str = "transform", dropout: float = 0.1):
        super().__init__()
        if kind not in REGION_HEADS:
            raise ValueError(f"region score head must be one of {REGION_HEADS}, got {kind!r}")
        self.transform = PredictionTransform(config) if kind == "transform" else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.scorer = nn.Linear(config.hidden_size, 1)

    def forward(self, region_hidden: torch.Tensor) -> torch.Tensor:
        return self.scorer(self.dropout(self.transform(region_hidden))).squeeze(-1)
