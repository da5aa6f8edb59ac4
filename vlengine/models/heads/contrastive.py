"""CSS-BERT's contrastive projections: sentence and image embeddings into one space for the pair-wise loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VLConfig


class ContrastiveProjection(nn.Module):
    """Linear(H, d) for the sentence side and another for the image side, optionally L2-normalised.

    The outputs (E', F') are what ``vlengine.ops`` contrastive loss takes: the
    B x B similarity matrix is formed there, tiled, never here.
    """

    def __init__(self, config: VLConfig, dim: int | None = None, normalize: bool = True):
        super().__init__()
        dim = dim or config.contrastive_dim
        self.text = nn.Linear(config.hidden_size, dim)
        self.image = nn.Linear(config.hidden_size, dim)
        self.normalize = normalize

    def forward(self, sentence: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sentence [B, H], image [B, H] -> (E' [B, d], F' [B, d])."""
        e, f = self.text(sentence), self.image(image)
        if self.normalize:
            e, f = F.normalize(e, dim=-1), F.normalize(f, dim=-1)
        return e, f
