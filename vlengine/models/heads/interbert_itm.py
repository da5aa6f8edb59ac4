"""InterBERT's ITM head: an MLP on (text [CLS] output) * (mean-pooled image output)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import VLConfig
from ..encoder import activation
from .pair_classification import _binary_loss


class InterBertITMHead(nn.Module):
    """Linear(H, H) -> activation -> LayerNorm -> Linear(H, 2) on the element-wise product of the two summaries.

    With ``InterBert``: ``head(out.extras["text_cls"], out.image)`` (text [CLS] output of the
    text stream, mean of the image stream's region outputs).
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, text_cls: torch.Tensor, image_mean: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.LayerNorm(self.act(self.dense(text_cls * image_mean))))

    def loss(self, text_cls: torch.Tensor, image_mean: torch.Tensor, itm_label: torch.Tensor | None) -> torch.Tensor:
        return _binary_loss(self(text_cls, image_mean), itm_label, "itm_label")
