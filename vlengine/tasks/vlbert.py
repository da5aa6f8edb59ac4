"""VL-BERT pretraining: MLM with visual clues + masked RoI classification, text-only rows mixed in,
and (off in the released configs, on for zero-shot retrieval) the sentence-image relation task.

One step's batch holds caption rows and, when the loader mixes them in, text-only
rows (`text_only`): MLM is computed on both (the text-only rows keep the model's
language ability, VL-BERT's 1:1 mix); region classification on the caption rows'
masked regions; the relation (ITM) loss on caption rows when `itm_weight` > 0,
with conditional masking (the masker, vlengine.data.masking.ConditionalMasking) so
random captions carry no MLM/region labels.
"""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import ITMHead, RegionClassificationHead

from .base import Masker, PretrainObjective
from .output import TaskOutput, accuracy
from .terms import region_class_term


def fill_text_only_image_size(batch: VLBatch) -> VLBatch:
    """Give text-only rows a positive image size.

    concat_batches (vlengine.data) pads the image size of text-only rows with 0,
    while the model checks every row's size is positive before it embeds boxes;
    those rows have no regions, so any positive size is never used.
    """
    if batch.image_size is None or batch.text_only is None or not bool(batch.text_only.any()):
        return batch
    size = torch.where(batch.text_only.unsqueeze(1) & (batch.image_size <= 0),
                       torch.ones_like(batch.image_size), batch.image_size)
    return batch.replace(image_size=size)


class VLBertPretraining(PretrainObjective):
    """VL-BERT + its pretraining heads, as one module DeepSpeed can wrap.

    Args:
        model: a `vlengine.models.VLBert`.
        masker: the masking policy, (batch, generator) -> batch with mlm_labels, region_masked and
            region_targets (e.g. VL-BERT's word + RoI policies from vlengine.data.masking).
        mrc_weight, itm_weight: loss weights (VL-BERT: 1 and 0).
        soft_region_targets: use the detector's score vectors when the batch has them.
    """

    tasks = ("pretrain",)
    paper = "VL-BERT"

    def __init__(self, model: nn.Module, masker: Masker | None, mrc_weight: float = 1.0, itm_weight: float = 0.0,
                 soft_region_targets: bool = True):
        super().__init__(model, masker)
        config = model.config
        self.mrc = RegionClassificationHead(config)
        self.itm = ITMHead(config) if itm_weight > 0 else None
        self.mrc_weight = float(mrc_weight)
        self.itm_weight = float(itm_weight)
        self.soft_region_targets = soft_region_targets

    def prepare_batch(self, batch: VLBatch, task: str, generator: torch.Generator) -> VLBatch:
        """Mask the batch (on the host, before it moves to the device)."""
        return fill_text_only_image_size(super().prepare_batch(batch, task, generator))

    def forward(self, batch: VLBatch, task: str = "pretrain") -> TaskOutput:
        self.check_task(task)
        out = self.model(batch)
        loss, metrics = self.mlm_term(out.text, batch)
        if out.regions is not None and batch.region_masked is not None and self.mrc_weight > 0:
            mrc_loss, mrc_metrics = region_class_term(self.mrc, out.regions, batch, self.soft_region_targets)
            loss = loss + self.mrc_weight * mrc_loss
            metrics.update(mrc_metrics)
        if self.itm is not None and batch.itm_label is not None and bool(batch.image_rows.any()):
            rows = batch.image_rows
            itm_logits = self.itm(out.pooled[rows])
            itm_loss = nn.functional.cross_entropy(itm_logits.float(), batch.itm_label[rows])
            loss = loss + self.itm_weight * itm_loss
            metrics["itm_loss"] = itm_loss.detach()
            metrics["itm_acc"] = accuracy(itm_logits.detach(), batch.itm_label[rows])
        return TaskOutput(loss, metrics)
