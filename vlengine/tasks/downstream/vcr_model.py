"""VCR: four sequences per question (Q->A or QA->R), one logit each from the pooled output
(dropout -> Linear(H, 1)), softmax cross-entropy or per-choice sigmoid over the four; with
``region_class_weight`` > 0 VL-BERT's auxiliary loss, the detector class of every labelled region
classified from its output (``RegionClassificationHead``), is added with that weight.

The image is encoded once per question: the visual front-end (trunk, fused RoIAlign, head) runs on
the B questions' images and its RoI features are handed to the 4B rows (``batch.extras["visual"]``),
so neither the pixels nor the trunk's activations exist four times. ``share_image=False`` runs the
front-end on every row (the repeated path the memory benchmark and the equivalence test compare).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.models.heads import RegionClassificationHead
from vlengine.models.init import init_bert_weights

from ..output import TaskOutput
from .backbone import encode

NUM_CHOICES = 4
LOSSES = ("softmax", "sigmoid")
PER_IMAGE = ("images", "region_features", "region_boxes", "region_valid", "image_size", "region_labels")


class VcrModel(nn.Module):
    """``logits(batch)`` -> [B, 4]. ``batch``: text fields with 4B rows (question-major, choice-minor),
    the image fields (``PER_IMAGE``) with B rows; ``extras["text_regions"]`` [4B, T] grounds mentions,
    ``extras["label"]`` [B] is the right choice (IGNORE_INDEX: none, a test question)."""

    def __init__(self, backbone: nn.Module, loss: str = "softmax", dropout: float = 0.1,
                 region_class_weight: float = 0.0):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"VCR loss must be one of {LOSSES}, got {loss!r}")
        if region_class_weight < 0:
            raise ValueError(f"VCR region_class_weight must be >= 0, got {region_class_weight}")
        self.backbone, self.loss_kind, self.region_class_weight = backbone, loss, float(region_class_weight)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.config.hidden_size, 1))
        self.region_classes = RegionClassificationHead(backbone.config) if region_class_weight > 0 else None
        for module in (self.head, self.region_classes):
            if module is not None:
                init_bert_weights(module, backbone.config.initializer_range)

    def logits(self, batch: VLBatch, share_image: bool = True) -> torch.Tensor:
        return self._forward(batch, share_image)[0]

    def _forward(self, batch: VLBatch, share_image: bool = True):
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
        out = encode(self.backbone, batch)
        return self.head(out.pooled).view(-1, NUM_CHOICES).float(), out, batch

    def loss(self, batch: VLBatch, labels: torch.Tensor | None = None) -> TaskOutput:
        """``labels`` [B] (default: ``extras["label"]``); questions without a label are left out."""
        labels = batch.extras["label"] if labels is None else labels
        logits, out, rows = self._forward(batch)
        known = labels != IGNORE_INDEX
        if not bool(known.any()):
            raise ValueError("a VCR training batch has no labelled question (test split?)")
        logits, labels = logits[known], labels[known]
        if self.loss_kind == "softmax":
            loss = F.cross_entropy(logits, labels)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, NUM_CHOICES).float())
        metrics = {"vcr_acc": (logits.detach().argmax(-1) == labels).float().mean()}
        if self.region_classes is not None and out.regions is not None and rows.region_labels is not None:
            # every valid region with a detector label (VL-BERT: the RoI outputs of all four sequences)
            labelled = rows.valid_regions & (rows.region_labels != IGNORE_INDEX)
            aux = self.region_classes.loss(out.regions, labelled, rows.region_labels)
            metrics["vcr_region_class_loss"] = aux.detach().float()
            loss = loss + self.region_class_weight * aux.float()
        metrics["vcr_loss"] = loss.detach()
        return TaskOutput(loss, metrics)

    @torch.no_grad()
    def probabilities(self, batch: VLBatch) -> torch.Tensor:
        logits = self.logits(batch)
        return logits.softmax(-1) if self.loss_kind == "softmax" else logits.sigmoid()

    def predict(self, batch: VLBatch) -> torch.Tensor:
        """[B, 4] the choices' probabilities (the submission's numbers; the top one is the answer)."""
        return self.probabilities(batch)

    def forward(self, batch: VLBatch, task: str | None = None) -> TaskOutput:
        return self.loss(batch)
