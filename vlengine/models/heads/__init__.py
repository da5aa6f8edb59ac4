"""Pretraining and task heads, one per file. Each has ``forward`` (logits) and ``loss`` (from VLBatch fields)."""

from .fused_linear_cross_entropy import fused_linear_cross_entropy
from .mlm import MaskedLMHead
from .region_classification import RegionClassificationHead
from .transform import PredictionTransform

__all__ = ["MaskedLMHead", "PredictionTransform", "RegionClassificationHead", "fused_linear_cross_entropy"]
