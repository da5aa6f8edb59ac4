"""VCR: four sequences per question (Q->A or QA->R), one logit each from the pooled output
(dropout -> Linear(H, 1)), softmax cross-entropy or per-choice sigmoid over the four.

The image is encoded once per question: the visual front-end (trunk, fused RoIAlign, head) runs on
the B questions' images and its RoI features are handed to the 4B rows (``batch.extras["visual"]``),
so neither the pixels nor the trunk's activations exist four times. ``share_image=False`` runs the
front-end on every row (the repeated path the memory benchmark and the equivalence test compare).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.init import init_bert_weights

from ..output import TaskOutput
from .backbone import encode

NUM_CHOICES = 4
LOSSES = ("softmax", "sigmoid")
PER_IMAGE = ("images", "region_boxes", "region_valid", "image_size", "region_labels")


class VcrModel(nn.Module):
    """``logits(batch)`` -> [B, 4]. ``batch``: text fields with 4B rows (question-major, choice-minor),
    the image fields (``PER_IMAGE``) with B rows; ``extras["text_regions"]`` [4B, T] grounds mentions."""

    def __init__(self, backbone: nn.Module, loss: str = "softmax", dropout: float = 0.1):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"VCR loss must be one of {LOSSES}, got {loss!r}")
        self.backbone, self.loss_kind = backbone, loss
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.config.hidden_size, 1))
        init_bert_weights(self.head, backbone.config.initializer_range)

    def logits(self, batch: VLBatch, share_image: bool = True) -> torch.Tensor:
        rows = batch.input_ids.shape[0]
        if rows % NUM_CHOICES:
            raise ValueError(f"VCR batches hold {NUM_CHOICES} rows per question, got {rows} rows")
        per_row = {name: getattr(batch, name).repeat_interleave(NUM_CHOICES, 0)
                   for name in PER_IMAGE if getattr(batch, name) is not None}
        if share_image and batch.images is not None:
            features, whole = self.backbone._region_features(batch)       # once per image
            shared = (features.repeat_interleave(NUM_CHOICES, 0), whole.repeat_interleave(NUM_CHOICES, 0))
            batch = batch.replace(**{**per_row, "images": None}, extras={**(batch.extras or {}), "visual": shared})
        else:
            batch = batch.replace(**per_row)
        return self.head(encode(self.backbone, batch).pooled).view(-1, NUM_CHOICES).float()

    def loss(self, batch: VLBatch, labels: torch.Tensor) -> TaskOutput:
        logits = self.logits(batch)
        if self.loss_kind == "softmax":
            loss = F.cross_entropy(logits, labels)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, NUM_CHOICES).float())
        acc = (logits.detach().argmax(-1) == labels).float().mean()
        return TaskOutput(loss, {"vcr_loss": loss.detach(), "vcr_acc": acc})

    @torch.no_grad()
    def probabilities(self, batch: VLBatch) -> torch.Tensor:
        logits = self.logits(batch)
        return logits.softmax(-1) if self.loss_kind == "softmax" else logits.sigmoid()
