"""What every architecture's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class VLOutput:
    """Hidden states put back in the batch's own layouts, so heads index them like the labels.

    text:    [B, T, H] final hidden state of every text position (zeros on padding).
    regions: [B, R, H] final hidden state of every region (zeros on padding and on
             text-only rows), or None for a text-only batch.
    pooled:  [B, H] the sequence summary used by the pair heads (ITM, NSP, QA):
             BERT's pooler (dense + tanh) on [CLS] unless the architecture says otherwise.
    image:   [B, H] an image-level summary where the architecture has one (InterBERT,
             SemVLP: the [IMG] output; VL-BERT/CSS-BERT: mean of region outputs), else None.
    extras:  architecture-specific tensors (e.g. "end": the [END] output).
    """
    text: torch.Tensor
    regions: torch.Tensor | None
    pooled: torch.Tensor
    image: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)
