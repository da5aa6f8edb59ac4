"""NLVR2: (image 0, sentence) and (image 1, sentence) encoded as two rows, pooled outputs
concatenated, MLP to True/False (``PooledPairClassifier``), cross-entropy."""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.init import init_bert_weights
from vlengine.models.heads import PooledPairClassifier

from ..output import TaskOutput, accuracy
from .backbone import encode
from .losses import class_cross_entropy


class Nlvr2Model(nn.Module):
    """``loss(batch)`` -> TaskOutput; ``predict(batch)`` -> [B / 2] (1 = True)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = PooledPairClassifier(backbone.config, num_classes=2)
        init_bert_weights(self.head, backbone.config.initializer_range)

    def logits(self, batch: VLBatch) -> torch.Tensor:
        return self.head(encode(self.backbone, batch).pooled)

    def loss(self, batch: VLBatch) -> TaskOutput:
        labels = (batch.extras or {}).get("label")
        if labels is None:
            raise ValueError("NLVR2 loss needs the examples' labels (batch.extras['label'])")
        logits = self.logits(batch)
        loss = class_cross_entropy(logits, labels)
        return TaskOutput(loss, {"nlvr2_loss": loss.detach().float(), "nlvr2_acc": accuracy(logits.detach(), labels)})

    @torch.no_grad()
    def predict(self, batch: VLBatch) -> torch.Tensor:
        return self.logits(batch).argmax(-1)

    def forward(self, batch: VLBatch, task: str | None = None) -> TaskOutput:
        return self.loss(batch)
