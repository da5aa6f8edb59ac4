"""Vocabulary settings shared by the text masking policies (bert-base-uncased layout by default)."""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import probability

# bert-base-uncased (and vlengine.data.text): [PAD]=0, [unused*]=1..99, [UNK]=100,
# [CLS]=101, [SEP]=102, [MASK]=103, word pieces from 104.
BERT_SPECIAL_IDS = (0, 100, 101, 102, 103)
BERT_MASK_ID = 103
BERT_FIRST_WORD_ID = 104


@dataclass(frozen=True)
class TextMaskingSettings:
    """How selected tokens are replaced.

    vocab_size: size of the vocabulary (random replacements are < vocab_size).
    mask_token_id: id of [MASK].
    special_ids: ids never masked (besides padding and word id -1).
    mask_prob / random_prob: of the selected units, the share replaced by
        [MASK] / by a random token (the rest is kept): BERT's 80/10/10.
    random_token_low: random replacements are drawn from [random_token_low,
        vocab_size); 104 skips bert-base-uncased's specials and [unused*] slots
        (BERT itself draws from the whole vocabulary: set 0 for that).
    """

    vocab_size: int
    mask_token_id: int = BERT_MASK_ID
    special_ids: tuple[int, ...] = BERT_SPECIAL_IDS
    mask_prob: float = 0.8
    random_prob: float = 0.1
    random_token_low: int = BERT_FIRST_WORD_ID

    def _check_text_settings(self) -> None:
        name = type(self).__name__
        if not isinstance(self.vocab_size, int) or self.vocab_size <= 0:
            raise ValueError(f"{name}: vocab_size must be a positive int, got {self.vocab_size!r}")
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(f"{name}: mask_token_id must be in [0, vocab_size={self.vocab_size}), "
                             f"got {self.mask_token_id}")
        if not 0 <= self.random_token_low < self.vocab_size:
            raise ValueError(f"{name}: random_token_low must be in [0, vocab_size={self.vocab_size}), "
                             f"got {self.random_token_low}")
        object.__setattr__(self, "special_ids", tuple(int(i) for i in self.special_ids))
        mask_p = probability(name, "mask_prob", self.mask_prob)
        random_p = probability(name, "random_prob", self.random_prob)
        if mask_p + random_p > 1.0 + 1e-12:
            raise ValueError(f"{name}: mask_prob + random_prob must be <= 1, got {mask_p} + {random_p}")

    @property
    def random_token_range(self) -> tuple[int, int]:
        return self.random_token_low, self.vocab_size
