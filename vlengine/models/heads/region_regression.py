"""Region feature regression (SemVLP / LXMERT masked object prediction): predict the masked RoI's 2048-d feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VLConfig
from .selection import zero_loss
from .transform import PredictionTransform

_KINDS = ("mse", "smooth_l1")


class RegionFeatureRegressionHead(nn.Module):
    """transform -> Linear(H, region_feature_size); loss at masked regions against the original features.

    ``kind="mse"`` (UNITER) or ``"smooth_l1"`` (LXMERT's released code), averaged
    over masked regions and feature dimensions.
    """

    def __init__(self, config: VLConfig, kind: str = "mse"):
        super().__init__()
        if kind not in _KINDS:
            raise ValueError(f"RegionFeatureRegressionHead: kind must be one of {_KINDS}, got {kind!r}")
        self.kind = kind
        self.transform = PredictionTransform(config)
        self.regressor = nn.Linear(config.hidden_size, config.region_feature_size)

    def forward(self, region_hidden: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.transform(region_hidden))

    def loss(self, region_hidden: torch.Tensor, region_masked: torch.Tensor | None,
             feature_targets: torch.Tensor | None) -> torch.Tensor:
        """region_hidden [B, R, H], region_masked [B, R] bool, feature_targets [B, R, F] (region_feature_targets)."""
        if region_masked is None or feature_targets is None:
            raise ValueError("RegionFeatureRegressionHead.loss needs region_masked and region_feature_targets")
        want = (*region_hidden.shape[:-1], self.regressor.out_features)
        if tuple(feature_targets.shape) != want:
            raise ValueError(f"region_feature_targets must be {list(want)}, got {list(feature_targets.shape)}")
        if region_masked.shape != region_hidden.shape[:-1] or region_masked.dtype != torch.bool:
            raise ValueError(f"region_masked must be bool {list(region_hidden.shape[:-1])}, got "
                             f"{region_masked.dtype} {list(region_masked.shape)}")
        rows = region_hidden[region_masked]
        if rows.shape[0] == 0:
            return zero_loss(self(region_hidden[:, :1]))
        prediction = self(rows).float()
        target = feature_targets[region_masked].float()
        if self.kind == "mse":
            return F.mse_loss(prediction, target).to(rows.dtype)
        return F.smooth_l1_loss(prediction, target).to(rows.dtype)
