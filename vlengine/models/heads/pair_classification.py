"""Two-way classifiers on the pooled output: image-text matching / sentence-image relation, and NSP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VLConfig
from .selection import check_class_range


def _binary_loss(logits: torch.Tensor, labels: torch.Tensor | None, name: str) -> torch.Tensor:
    if labels is None:
        raise ValueError(f"the batch has no {name}")
    if labels.shape != logits.shape[:1] or labels.is_floating_point():
        raise ValueError(f"{name} must be an integer tensor of shape [{logits.shape[0]}], "
                         f"got {labels.dtype} {list(labels.shape)}")
    check_class_range(labels, 2, name)
    return F.cross_entropy(logits.float(), labels).to(logits.dtype)


class ITMHead(nn.Module):
    """Linear(H, 2) on the pooled output: 1 = the caption describes the image (VL-BERT's relation task, SemVLP's ITM)."""

    def __init__(self, config: VLConfig):
        super().__init__()
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)

    def loss(self, pooled: torch.Tensor, itm_label: torch.Tensor | None) -> torch.Tensor:
        """Cross-entropy against ``batch.itm_label`` [B] (1 matched, 0 random caption)."""
        return _binary_loss(self(pooled), itm_label, "itm_label")


class NSPHead(ITMHead):
    """BERT's next-sentence prediction (``cls.seq_relationship``, loadable from a checkpoint), used by CSS-BERT.

    Label convention as in BERT: 0 = B follows A, 1 = B is random.
    """

    def loss(self, pooled: torch.Tensor, nsp_label: torch.Tensor | None) -> torch.Tensor:
        return _binary_loss(self(pooled), nsp_label, "nsp_label")
