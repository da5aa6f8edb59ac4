"""VQA / GQA: a backbone plus an answer classifier, selectable per paper.

``head="answer_slot"``: VL-BERT's readout of the [MASK] slot after the question
(the dataset's ``answer_slot=True`` input). ``head="pooled_mlp"``: the pooled
output through Linear(H, 2H) -> GELU -> LayerNorm -> Linear(2H, A) (UNITER,
LXMERT, SemVLP; ``ImageQAHead``). ``loss="bce"``: BCE on the soft scores times
the number of answers (UNITER/LXMERT); ``loss="ce"``: cross-entropy on the gold
class (GQA's answers as classes).
"""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.init import init_bert_weights
from vlengine.models.heads import AnswerSlotHead, ImageQAHead

from ..output import TaskOutput, accuracy
from .backbone import encode
from .losses import answer_score, class_cross_entropy, soft_score_bce

HEADS = ("answer_slot", "pooled_mlp")
LOSSES = ("bce", "ce")


class AnswerModel(nn.Module):
    """``loss(batch)`` -> TaskOutput; ``predict(batch)`` -> [B] answer classes; ``logits(batch)`` -> [B, A]."""

    def __init__(self, backbone: nn.Module, num_answers: int, head: str = "answer_slot", loss: str = "bce",
                 task: str = "vqa"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"answer head must be one of {HEADS}, got {head!r}")
        if loss not in LOSSES:
            raise ValueError(f"answer loss must be one of {LOSSES}, got {loss!r}")
        if num_answers <= 0:
            raise ValueError(f"num_answers must be positive, got {num_answers}")
        self.backbone = backbone
        self.head_kind, self.loss_kind, self.task = head, loss, task
        config = backbone.config
        self.head = AnswerSlotHead(config, num_answers) if head == "answer_slot" else ImageQAHead(config, num_answers)
        init_bert_weights(self.head, config.initializer_range)

    def init_transform_from_mlm(self, mlm_head: nn.Module) -> None:
        """Start the answer-slot head's transform from a pretrained MLM head's (VL-BERT's released VQA
        setting): the slot is a masked token, which that transform was trained to read."""
        if self.head_kind != "answer_slot":
            raise ValueError("only the answer_slot head has an MLM transform to initialise")
        self.head.transform.load_state_dict(mlm_head.transform.state_dict())

    @property
    def needs_answer_slot(self) -> bool:
        return self.head_kind == "answer_slot"

    def logits(self, batch: VLBatch) -> torch.Tensor:
        out = encode(self.backbone, batch)
        if self.head_kind == "answer_slot":
            slot = (batch.extras or {}).get("answer_slot")
            if slot is None:
                raise ValueError("the answer_slot head needs items encoded with their [MASK] slot "
                                 "(build the dataset with answer_slot=True)")
            return self.head(out.text, slot)
        return self.head(out.pooled)

    def loss(self, batch: VLBatch) -> TaskOutput:
        extras = batch.extras or {}
        logits = self.logits(batch)
        metrics = {}
        if self.loss_kind == "bce":
            loss = soft_score_bce(logits, extras.get("answer_scores"))
            metrics[f"{self.task}_score"] = answer_score(logits.detach(), extras["answer_scores"])
        else:
            labels = extras.get("answer_label")
            if labels is None:
                raise ValueError("loss='ce' needs answer classes (answer_label): a GQA dataset gives them")
            loss = class_cross_entropy(logits, labels)
            metrics[f"{self.task}_acc"] = accuracy(logits.detach(), labels)
        metrics[f"{self.task}_loss"] = loss.detach().float()
        return TaskOutput(loss, metrics)

    @torch.no_grad()
    def predict(self, batch: VLBatch) -> torch.Tensor:
        return self.logits(batch).argmax(-1)

    def forward(self, batch: VLBatch, task: str | None = None) -> TaskOutput:
        return self.loss(batch)
