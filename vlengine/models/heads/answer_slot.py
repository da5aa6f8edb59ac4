"""VL-BERT's VQA readout: the hidden state of the [MASK] answer slot after the question, through
the MLM transform, dropout and a classifier over the answers (``[CLS] q [SEP] [MASK] [SEP]``)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VLConfig
from .transform import PredictionTransform


class AnswerSlotHead(nn.Module):
    """transform (dense -> activation -> LayerNorm, BERT's ``cls.predictions.transform`` names, so a
    pretrained MLM transform loads into it) -> Dropout(0.1) -> Linear(H, num_answers)."""

    def __init__(self, config: VLConfig, num_answers: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.transform = PredictionTransform(config)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, num_answers or config.num_answers)

    def forward(self, text_hidden: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """text_hidden [B, T, H], slot [B] (position of each row's answer slot) -> logits [B, A]."""
        if slot is None or slot.shape != text_hidden.shape[:1]:
            raise ValueError(f"answer slot positions must be a [{text_hidden.shape[0]}] tensor, got "
                             f"{None if slot is None else list(slot.shape)} (encode the question with its [MASK] slot)")
        if bool(((slot < 0) | (slot >= text_hidden.shape[1])).any()):
            raise ValueError(f"answer slot positions must lie in [0, {text_hidden.shape[1]}): a row has no slot")
        rows = torch.arange(text_hidden.shape[0], device=text_hidden.device)
        return self.classifier(self.dropout(self.transform(text_hidden[rows, slot])))
