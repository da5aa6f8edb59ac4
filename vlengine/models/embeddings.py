"""BERT's text embeddings (word + position + segment, LayerNorm, dropout) with the checkpoint's parameter names."""

from __future__ import annotations

import torch
from torch import nn

from .config import VLConfig

SEGMENT_A, SEGMENT_B, SEGMENT_C = 0, 1, 2   # VL-BERT: A/B text, C regions and [END]


class TextEmbeddings(nn.Module):
    """The embedding tables of BERT; the architectures add their visual terms before ``normalize``.

    Parameter names match ``bert.embeddings.*`` of a Hugging Face checkpoint.
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.max_positions = config.max_position_embeddings

    def text_positions(self, text_mask: torch.Tensor) -> torch.Tensor:
        """Position of every text token counted over real tokens only (0 at [CLS]), [B, T] int64."""
        return (text_mask.long().cumsum(1) - 1).clamp_min(0)

    def check_positions(self, last_position: torch.Tensor) -> None:
        top = int(last_position.max())
        if top >= self.max_positions:
            raise ValueError(f"sequence needs position {top} but the model has max_position_embeddings="
                             f"{self.max_positions}: shorten the text or raise the setting")

    def tokens(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
               token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """word + position + segment, before LayerNorm: [B, T, H]."""
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        if token_type_ids is None:
            return x + self.token_type_embeddings.weight[SEGMENT_A]
        return x + self.token_type_embeddings(token_type_ids)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm then dropout (applied once to the packed sequence: LN is per token)."""
        return self.dropout(self.LayerNorm(x))
