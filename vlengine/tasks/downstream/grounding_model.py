"""RefCOCO / RefCOCO+: a backbone plus one score per region (``RegionScoreHead``); the top-scored
candidate is the grounding.

``head="transform"``: VL-BERT's readout (MVRC transform -> dropout -> Linear(H, 1)); ``"linear"``: one
Linear. ``loss="bce"``: VL-BERT's per-region BCE against IoU > 0.5 with the ground truth, averaged over
the candidate regions; ``loss="ce"``: UNITER's softmax cross-entropy over the image's candidates
against the best-overlapping one (an expression with no candidate that counts is left out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.models.heads import RegionScoreHead
from vlengine.models.init import init_bert_weights

from ..output import TaskOutput
from .backbone import encode

LOSSES = ("bce", "ce")
POSITIVE_IOU = 0.5     # the BCE label: IoU > 0.5 (VL-BERT's training target, whatever the metric's comparison)


class GroundingModel(nn.Module):
    """``loss(batch)`` -> TaskOutput; ``predict(batch)`` -> [B] chosen region (position in the item's
    regions); ``scores(batch)`` -> [B, R] float32, -inf outside the candidates."""

    def __init__(self, backbone: nn.Module, head: str = "transform", loss: str = "bce"):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"grounding loss must be one of {LOSSES}, got {loss!r}")
        self.backbone = backbone
        self.loss_kind = loss
        self.head = RegionScoreHead(backbone.config, head)
        init_bert_weights(self.head, backbone.config.initializer_range)

    def _extra(self, batch: VLBatch, name: str) -> torch.Tensor:
        value = (batch.extras or {}).get(name)
        if value is None:
            raise ValueError(f"the grounding model needs batch.extras[{name!r}] (a RefCOCO dataset's items)")
        return value

    def scores(self, batch: VLBatch) -> torch.Tensor:
        regions = encode(self.backbone, batch).regions
        if regions is None:
            raise ValueError("grounding needs regions: the batch has none")
        candidates = self._extra(batch, "candidate_mask")
        return self.head(regions).float().masked_fill(~candidates, float("-inf"))

    def loss(self, batch: VLBatch) -> TaskOutput:
        scores = self.scores(batch)
        candidates, iou = self._extra(batch, "candidate_mask"), self._extra(batch, "region_iou")
        if self.loss_kind == "bce":
            labels = (iou > POSITIVE_IOU).float()
            loss = F.binary_cross_entropy_with_logits(scores[candidates], labels[candidates])
        else:
            best = iou.masked_fill(~candidates, -1.0).argmax(-1)
            reachable = (iou.gather(1, best[:, None])[:, 0] > POSITIVE_IOU)
            target = torch.where(reachable, best, torch.full_like(best, IGNORE_INDEX))
            # every row unreachable: 0 with a gradient path, so the step still runs
            loss = (F.cross_entropy(scores, target, ignore_index=IGNORE_INDEX) if bool(reachable.any())
                    else scores[candidates].sum() * 0.0)
        chosen = scores.detach().argmax(-1, keepdim=True)
        accuracy = self._extra(batch, "region_hit").gather(1, chosen).float().mean()
        return TaskOutput(loss, {"refcoco_loss": loss.detach().float(), "refcoco_acc": accuracy})

    @torch.no_grad()
    def predict(self, batch: VLBatch) -> torch.Tensor:
        return self.scores(batch).argmax(-1)

    def forward(self, batch: VLBatch, task: str | None = None) -> TaskOutput:
        return self.loss(batch)
