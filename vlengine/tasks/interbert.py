"""InterBERT pretraining (Lin et al., KDD 2020): MSM + MRM + ITM, after an MLM + MOM warm-up stage.

Two stages, switched by step (`vlengine.training.task_mixing.StagedTaskMixer`):
  * "mlm_mom": token-level MLM + masked object modelling (region classification),
    the paper's first stage, with ITM when ``stage_one_itm`` (the paper's
    ablation, sec. 4.6: "first pretrained with MLM+MOM+ITM for 5 epochs");
  * "msm_mrm_itm": masked segment modelling (span masking), masked region
    modelling with IoU-neighbourhood masking, and image-text matching, with
    conditional masking.
ITM multiplies the text [CLS] output with the image summary ``itm_image``:
"img_token", the output at the [IMG] position (the mean-pooled object
representation; the paper, sec. 3.3), or "region_mean", the mean of the region
outputs (the engine's earlier form).
Which tokens/regions are masked is the masking policy's job: `maskers[task]`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import InterBertITMHead, RegionClassificationHead

from .base import Masker, PretrainObjective
from .output import TaskOutput
from .terms import pair_term, region_class_term

TASKS = ("mlm_mom", "msm_mrm_itm")
ITM_IMAGE = ("region_mean", "img_token")


class InterBertPretraining(PretrainObjective):
    """InterBERT + heads. `maskers` maps each task to its masking policy (batch, generator) -> batch."""

    tasks = TASKS
    paper = "InterBERT"

    def __init__(self, model: nn.Module, maskers: Mapping[str, Masker], mrm_weight: float = 1.0,
                 itm_weight: float = 1.0, soft_region_targets: bool = True, stage_one_itm: bool = False,
                 itm_image: str = "region_mean"):
        super().__init__(model, maskers)
        if itm_image not in ITM_IMAGE:
            raise ValueError(f"InterBertPretraining: itm_image must be one of {ITM_IMAGE}, got {itm_image!r}")
        self.stage_one_itm, self.itm_image = bool(stage_one_itm), itm_image
        config = model.config
        self.mrc = RegionClassificationHead(config)
        self.itm = InterBertITMHead(config)
        self.mrm_weight, self.itm_weight = float(mrm_weight), float(itm_weight)
        self.soft_region_targets = soft_region_targets

    def forward(self, batch: VLBatch, task: str = "msm_mrm_itm") -> TaskOutput:
        self.check_task(task)
        out = self.model(batch)
        text_name, region_name = ("mlm", "mom") if task == "mlm_mom" else ("msm", "mrm")
        loss, metrics = self.mlm_term(out.text, batch, text_name)
        if batch.region_masked is not None:
            region_loss, m = region_class_term(self.mrc, out.regions, batch, self.soft_region_targets, region_name)
            loss = loss + self.mrm_weight * region_loss
            metrics.update(m)
        if (task == "msm_mrm_itm" or self.stage_one_itm) and batch.itm_label is not None:
            rows = batch.image_rows
            logits = self.itm_logits(out)[rows]
            itm_loss, m = pair_term(logits, batch.itm_label[rows], "itm")
            loss = loss + self.itm_weight * itm_loss
            metrics.update(m)
        return TaskOutput(loss, metrics)

    def itm_logits(self, out) -> torch.Tensor:
        """[B, 2] match logits of a forward's output: text [CLS] x the ``itm_image`` summary."""
        image = out.extras["image_cls"] if self.itm_image == "img_token" else out.image
        return self.itm(out.extras["text_cls"], image)
