"""Running a backbone from vlengine.models for a downstream head: one plain encoder pass."""

from __future__ import annotations

from torch import nn

from vlengine.batch import VLBatch
from vlengine.models import CSSBert, VLBert
from vlengine.models.outputs import VLOutput


def encode(backbone: nn.Module, batch: VLBatch) -> VLOutput:
    """The backbone's outputs for ``batch``. CSS-BERT's own forward adds two passes for its
    contrastive embeddings; the downstream heads need one, VL-BERT's (its parent class)."""
    if isinstance(backbone, CSSBert):
        return VLBert.forward(backbone, batch)
    return backbone(batch)


def hidden_size(backbone: nn.Module) -> int:
    config = getattr(backbone, "config", None)
    if config is None:
        raise ValueError(f"the backbone {type(backbone).__name__} has no .config (use a vlengine.models architecture)")
    return config.hidden_size
