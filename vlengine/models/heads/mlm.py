"""Masked language modelling head tied to the word embeddings, projecting only the masked rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlengine.ops.linear_cross_entropy import fused_linear_cross_entropy

from ..config import VLConfig
from .selection import check_class_range, labelled_rows, zero_loss
from .transform import PredictionTransform


class MaskedLMHead(nn.Module):
    """transform -> word_embeddings^T + bias (BERT's ``cls.predictions``; the decoder is the embedding table).

    The vocabulary projection is ~27% of BERT-base's FLOPs when run on every token;
    ``loss`` gathers the ~15% masked rows first. ``fused=True`` then never
    materialises their [M, V] logits (chunked linear + cross-entropy); ``False``
    computes them at once; ``None`` (default) chunks only when the logits would
    exceed ``fused_threshold`` elements: at masked rows only the [M, V] block is
    usually small, and one matmul is faster than chunks.
    """

    def __init__(self, config: VLConfig, word_embeddings: nn.Embedding, fused: bool | None = None,
                 chunk_size: int = 1024, fused_threshold: int = 2**26):
        super().__init__()
        self.transform = PredictionTransform(config)
        self.word_embeddings = word_embeddings     # tied: the same Parameter as the input table
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.fused = fused
        self.chunk_size = chunk_size
        self.fused_threshold = fused_threshold

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [..., V] for every row of ``hidden`` [..., H] (use ``masked_logits`` to pick rows first)."""
        return F.linear(self.transform(hidden), self.word_embeddings.weight, self.bias)

    def masked_logits(self, text_hidden: torch.Tensor, mlm_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [M, V], labels [M]) at the rows whose label is not IGNORE_INDEX only."""
        rows, labels = labelled_rows(text_hidden, mlm_labels, "mlm_labels")
        return self(rows), labels

    def loss(self, text_hidden: torch.Tensor, mlm_labels: torch.Tensor | None,
             fused: bool | None = None) -> torch.Tensor:
        """Mean cross-entropy over the masked tokens ([B, T, H] hidden, [B, T] labels); 0 when none is masked."""
        if mlm_labels is None:
            raise ValueError("MaskedLMHead.loss: the batch has no mlm_labels (run a masking policy first)")
        rows, labels = labelled_rows(text_hidden, mlm_labels, "mlm_labels")
        check_class_range(labels, self.bias.numel(), "mlm_labels")
        if labels.numel() == 0:
            return zero_loss(self.transform(text_hidden[:, :1]), self.word_embeddings.weight[:1], self.bias)
        h = self.transform(rows)
        fused = self.fused if fused is None else fused
        if fused is None:
            fused = h.shape[0] * self.bias.numel() > self.fused_threshold
        if fused:
            return fused_linear_cross_entropy(h, self.word_embeddings.weight, self.bias, labels, self.chunk_size)
        return F.cross_entropy(F.linear(h, self.word_embeddings.weight, self.bias).float(), labels).to(h.dtype)

    def full_vocabulary_loss(self, text_hidden: torch.Tensor, mlm_labels: torch.Tensor) -> torch.Tensor:
        """The plain baseline: logits for every token, then cross-entropy ignoring unmasked ones."""
        logits = self(text_hidden).float()
        return F.cross_entropy(logits.flatten(0, 1), mlm_labels.flatten(), ignore_index=-100)
