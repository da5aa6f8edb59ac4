"""Image question answering as multi-label classification over an answer set, with soft-score BCE (LXMERT, SemVLP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VLConfig
from ..encoder import activation


class ImageQAHead(nn.Module):
    """Linear(H, 2H) -> activation -> LayerNorm -> Linear(2H, num_answers) on the pooled output."""

    def __init__(self, config: VLConfig, num_answers: int | None = None):
        super().__init__()
        num_answers = num_answers or config.num_answers
        h = config.hidden_size
        self.dense = nn.Linear(h, 2 * h)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(2 * h, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(2 * h, num_answers)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.LayerNorm(self.act(self.dense(pooled))))

    def loss(self, pooled: torch.Tensor, answer_scores: torch.Tensor | None,
             has_answer: torch.Tensor | None = None) -> torch.Tensor:
        """BCE with logits against soft scores in [0, 1] ([B, num_answers]), summed over answers, mean over rows.

        ``has_answer`` [B] bool restricts the loss to QA rows (caption rows in a mixed batch carry none).
        """
        logits = self(pooled)
        if answer_scores is None or tuple(answer_scores.shape) != tuple(logits.shape):
            raise ValueError(f"answer scores must be a [{logits.shape[0]}, {logits.shape[1]}] tensor, got "
                             f"{None if answer_scores is None else list(answer_scores.shape)}")
        if not bool(((answer_scores >= 0) & (answer_scores <= 1)).all()):
            raise ValueError("answer scores must lie in [0, 1] (NaN is not allowed)")
        per_row = F.binary_cross_entropy_with_logits(logits.float(), answer_scores.float(),
                                                     reduction="none").sum(-1)
        if has_answer is not None:
            if has_answer.shape != per_row.shape or has_answer.dtype != torch.bool:
                raise ValueError(f"has_answer must be bool [{per_row.shape[0]}]")
            if not bool(has_answer.any()):
                return per_row.sum().to(logits.dtype) * 0.0
            per_row = per_row[has_answer]
        return per_row.mean().to(logits.dtype)
