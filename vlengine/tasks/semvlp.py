"""SemVLP pretraining: MLM + masked object prediction (feature regression + detected-label
classification) + ITM, each step in single-stream or two-stream mode over the same parameters.

The mode is the step's task ("single" / "two", drawn 50/50 by the task mixer, the
same on every rank). Image QA, the paper's fourth task, needs QA pairs that the
pretraining loader does not carry; it is left to fine-tuning.
"""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import ITMHead, RegionClassificationHead, RegionFeatureRegressionHead

from .base import Masker, PretrainObjective
from .output import TaskOutput
from .terms import pair_term, positive_rows, region_class_term

TASKS = ("single", "two")


class SemVLPPretraining(PretrainObjective):
    tasks = TASKS
    paper = "SemVLP"

    def __init__(self, model: nn.Module, masker: Masker, mop_regression_weight: float = 1.0,
                 mop_label_weight: float = 1.0, itm_weight: float = 1.0, regression: str = "mse"):
        super().__init__(model, masker)
        config = model.config
        self.mrc = RegionClassificationHead(config)
        self.regression = RegionFeatureRegressionHead(config, regression)
        self.itm = ITMHead(config)
        self.weights = {"reg": float(mop_regression_weight), "label": float(mop_label_weight),
                        "itm": float(itm_weight)}

    def forward(self, batch: VLBatch, task: str = "single") -> TaskOutput:
        self.check_task(task)
        out = self.model(batch, mode=task)
        loss, metrics = self.mlm_term(out.text, batch)
        if batch.region_masked is not None:
            if batch.region_feature_targets is not None and self.weights["reg"] > 0:
                # ITM negatives are masked too (conditional masking) but predict nothing
                predicted = batch.region_masked & positive_rows(batch).unsqueeze(1)
                reg = self.regression.loss(out.regions, predicted, batch.region_feature_targets)
                loss = loss + self.weights["reg"] * reg
                metrics["mop_reg_loss"] = reg.detach().float()
            if self.weights["label"] > 0:
                label_loss, m = region_class_term(self.mrc, out.regions, batch, soft=False, name="mop_label")
                loss = loss + self.weights["label"] * label_loss
                metrics.update(m)
        if batch.itm_label is not None and self.weights["itm"] > 0:
            rows = batch.image_rows
            itm_loss, m = pair_term(self.itm(out.pooled[rows]), batch.itm_label[rows], "itm")
            loss = loss + self.weights["itm"] * itm_loss
            metrics.update(m)
        metrics[f"mode_{task}"] = torch.tensor(1.0)
        return TaskOutput(loss, metrics)
