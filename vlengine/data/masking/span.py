"""InterBERT masked segment modeling: anchor words extended into short spans, 80/10/10."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlengine.batch import VLBatch

from ._checks import generator_for, probability
from ._replace import replace_selected
from ._text_settings import TextMaskingSettings
from ._text_units import maskable_tokens, token_units, unit_valid


@dataclass(frozen=True)
class SpanMasking(TextMaskingSettings):
    """InterBERT's MSM (seed 002, sec. 3.3): each word is an anchor with
    probability ``anchor_prob`` (0.1) and is extended by 0..``max_extra``
    (2) following words, the count drawn uniformly; every word of every span
    is then replaced 80% [MASK] / 10% random / 10% kept.

    Spans never reach special tokens or padding, and overlapping spans merge.
    ``whole_word=False`` works on WordPiece tokens instead of words (for
    batches without ``word_ids``). Fills ``input_ids`` and ``mlm_labels``.
    """

    anchor_prob: float = 0.1
    max_extra: int = 2
    whole_word: bool = True

    def __post_init__(self):
        self._check_text_settings()
        probability(type(self).__name__, "anchor_prob", self.anchor_prob)
        if not isinstance(self.max_extra, int) or self.max_extra < 0:
            raise ValueError(f"{type(self).__name__}: max_extra must be an int >= 0, got {self.max_extra!r}")

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        name = type(self).__name__
        maskable = maskable_tokens(name, batch, self.special_ids)
        units = token_units(name, batch, self.whole_word)
        ids = batch.input_ids
        generator = generator_for(name, generator, ids.device)
        usable = unit_valid(units, maskable)                                   # [B, U] over unit indices
        anchors = (torch.rand(ids.shape, generator=generator, device=ids.device) < self.anchor_prob) & usable
        extra = torch.randint(0, self.max_extra + 1, ids.shape, generator=generator, device=ids.device)
        covered = anchors.clone()
        for k in range(1, self.max_extra + 1):  # span offsets (at most max_extra), not tokens
            covered[:, k:] |= (anchors & (extra >= k))[:, :-k]
        covered &= usable
        selected = covered.gather(1, units) & maskable
        new_ids, labels = replace_selected(ids, selected, units, self.mask_token_id, self.random_token_range,
                                           self.mask_prob, self.random_prob, generator)
        return batch.replace(input_ids=new_ids, mlm_labels=labels)
