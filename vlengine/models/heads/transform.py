"""BERT's prediction transform (dense -> activation -> LayerNorm), shared by the token- and region-level heads."""

from __future__ import annotations

from torch import nn

from ..config import VLConfig
from ..encoder import activation


class PredictionTransform(nn.Module):
    """Names match ``cls.predictions.transform`` of a BERT checkpoint."""

    def __init__(self, config: VLConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))
