"""BERT / VL-BERT masked language modeling: 15% of tokens or whole words, 80/10/10."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlengine.batch import VLBatch

from ._checks import generator_for, probability
from ._replace import replace_selected
from ._text_settings import TextMaskingSettings
from ._text_units import maskable_tokens, token_units


@dataclass(frozen=True)
class MLMMasking(TextMaskingSettings):
    """Select each token (or, with ``whole_word``, each word) with probability ``prob``.

    Selected units are replaced 80% [MASK] / 10% random token / 10% kept,
    decided per unit. VL-BERT masks whole words (``whole_word=True``, from
    ``batch.word_ids``); BERT's original masks WordPiece tokens. Special
    tokens and padding are never selected.

    Fills ``input_ids`` (masked) and ``mlm_labels`` (original id on selected
    tokens, IGNORE_INDEX elsewhere).
    """

    prob: float = 0.15
    whole_word: bool = False

    def __post_init__(self):
        self._check_text_settings()
        probability(type(self).__name__, "prob", self.prob)

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        name = type(self).__name__
        maskable = maskable_tokens(name, batch, self.special_ids)
        units = token_units(name, batch, self.whole_word)
        ids = batch.input_ids
        generator = generator_for(name, generator, ids.device)
        picked = torch.rand(ids.shape, generator=generator, device=ids.device) < self.prob  # one draw per unit
        selected = picked.gather(1, units) & maskable
        new_ids, labels = replace_selected(ids, selected, units, self.mask_token_id, self.random_token_range,
                                           self.mask_prob, self.random_prob, generator)
        return batch.replace(input_ids=new_ids, mlm_labels=labels)
