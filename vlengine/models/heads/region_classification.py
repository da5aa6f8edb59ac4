"""Masked region classification (VL-BERT's masked RoI classification, SemVLP's detected-label classification)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VLConfig
from .selection import check_class_range, labelled_rows, zero_loss
from .transform import PredictionTransform


class RegionClassificationHead(nn.Module):
    """transform -> Linear(H, num_region_classes) at masked regions.

    Targets are either hard detector labels (``region_targets``, cross-entropy) or
    the detector's full score vector (``region_soft_labels``, soft cross-entropy
    -sum p log q, VL-BERT's released choice).
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        self.transform = PredictionTransform(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_region_classes)

    def forward(self, region_hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(region_hidden))

    def loss(self, region_hidden: torch.Tensor, region_masked: torch.Tensor | None,
             region_targets: torch.Tensor | None = None, soft_targets: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over masked regions.

        Args:
            region_hidden: [B, R, H] region outputs.
            region_masked: [B, R] bool, which regions were masked (and are predicted).
            region_targets: [B, R] int64 hard labels (IGNORE_INDEX where none); used when no soft targets.
            soft_targets: [B, R, C] detector scores; rows are renormalised to sum to 1.
        """
        if region_masked is None:
            raise ValueError("RegionClassificationHead.loss: the batch has no region_masked")
        if region_masked.shape != region_hidden.shape[:-1] or region_masked.dtype != torch.bool:
            raise ValueError(f"region_masked must be bool {list(region_hidden.shape[:-1])}, "
                             f"got {region_masked.dtype} {list(region_masked.shape)}")
        num_classes = self.classifier.out_features
        if soft_targets is not None:
            if soft_targets.shape != (*region_hidden.shape[:-1], num_classes):
                raise ValueError(f"region_soft_labels must be [{region_hidden.shape[0]}, {region_hidden.shape[1]}, "
                                 f"{num_classes}], got {list(soft_targets.shape)}")
            rows, target = region_hidden[region_masked], soft_targets[region_masked].float()
            if rows.shape[0] == 0:
                return zero_loss(self(region_hidden[:, :1]))
            if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
                raise ValueError("region_soft_labels must be finite and non-negative")
            target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
            log_q = F.log_softmax(self(rows).float(), dim=-1)
            return -(target * log_q).sum(-1).mean().to(rows.dtype)
        if region_targets is None:
            raise ValueError("RegionClassificationHead.loss: needs region_targets or region_soft_labels")
        labels = torch.where(region_masked, region_targets, torch.full_like(region_targets, -100))
        rows, labels = labelled_rows(region_hidden, labels, "region_targets")
        check_class_range(labels, num_classes, "region_targets")
        if labels.numel() == 0:
            return zero_loss(self(region_hidden[:, :1]))
        return F.cross_entropy(self(rows).float(), labels).to(rows.dtype)
