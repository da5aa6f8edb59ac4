"""SemVLP pretraining: MLM + masked object prediction (feature regression + detected-label
classification) + ITM, each step in single-stream or two-stream mode over the same parameters.

The mode is the step's task ("single" / "two", drawn 50/50 by the task mixer, the
same on every rank). Image QA, the paper's fourth task (sec. 3.1, as in LXMERT):
question rows mixed into the batch by the loader (``qa_label`` set) are answered
by a classifier on the pooled output, which is h_CLS in single-stream mode and
o_IMG in two-stream mode, as the paper builds it; cross-entropy over the answer
classes. Question rows take part in MLM and masked object prediction but not in
ITM (their ``itm_label`` is IGNORE_INDEX: a question is not a caption).
"""

from __future__ import annotations

import torch
from torch import nn

import torch.nn.functional as F

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.models.heads import ITMHead, RegionClassificationHead, RegionFeatureRegressionHead
from vlengine.models.heads.image_qa import ImageQAHead

from .base import Masker, PretrainObjective
from .output import TaskOutput
from .output import accuracy
from .terms import pair_term, positive_rows, region_class_term

TASKS = ("single", "two")


class SemVLPPretraining(PretrainObjective):
    tasks = TASKS
    paper = "SemVLP"

    def __init__(self, model: nn.Module, masker: Masker, mop_regression_weight: float = 1.0,
                 mop_label_weight: float = 1.0, itm_weight: float = 1.0, regression: str = "mse",
                 num_answers: int | None = None, qa_weight: float = 1.0):
        super().__init__(model, masker)
        config = model.config
        self.mrc = RegionClassificationHead(config)
        self.regression = RegionFeatureRegressionHead(config, regression)
        self.itm = ITMHead(config)
        # the QA head exists only when the run has questions (its size is their answer vocabulary)
        self.qa = ImageQAHead(config, num_answers) if num_answers else None
        self.weights = {"reg": float(mop_regression_weight), "label": float(mop_label_weight),
                        "itm": float(itm_weight), "qa": float(qa_weight)}

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
            rows = batch.image_rows & (batch.itm_label != IGNORE_INDEX)
            itm_loss, m = pair_term(self.itm(out.pooled[rows]), batch.itm_label[rows], "itm")
            loss = loss + self.weights["itm"] * itm_loss
            metrics.update(m)
        if batch.qa_label is not None and self.qa is not None and self.weights["qa"] > 0:
            qa_loss, m = self.qa_term(out.pooled, batch.qa_label)
            loss = loss + self.weights["qa"] * qa_loss
            metrics.update(m)
        metrics[f"mode_{task}"] = torch.tensor(1.0)
        return TaskOutput(loss, metrics)

    def qa_term(self, pooled: torch.Tensor, qa_label: torch.Tensor):
        """Cross-entropy over the answer classes on the question rows; 0 with NaN metrics when the
        batch has none (every rank still runs the head, so ZeRO's gradient buckets match)."""
        rows = qa_label != IGNORE_INDEX
        logits = self.qa(pooled[rows])
        if not bool(rows.any()):
            nan = torch.tensor(float("nan"))
            return logits.sum() * 0.0, {"qa_loss": nan, "qa_acc": nan}
        loss = F.cross_entropy(logits.float(), qa_label[rows]).to(logits.dtype)
        return loss, {"qa_loss": loss.detach().float(), "qa_acc": accuracy(logits.detach(), qa_label[rows])}
