"""Synthetic VLBatches for the masking-policy tests: BERT-layout ids, ragged text and regions."""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch

VOCAB = 30522
CLS, SEP, PAD, MASK = 101, 102, 0, 103


def text_batch(b: int, t: int, rng: torch.Generator, pieces_per_word: int = 3) -> VLBatch:
    """[CLS] words [SEP] [PAD]...: ragged lengths, words of 1..pieces_per_word WordPieces."""
    lengths = torch.randint(3, t + 1, (b,), generator=rng)                 # including [CLS] and [SEP]
    pos = torch.arange(t)[None, :]
    text_mask = pos < lengths[:, None]
    ids = torch.randint(1000, VOCAB, (b, t), generator=rng)
    ids = torch.where(text_mask, ids, torch.full_like(ids, PAD))
    ids[:, 0] = CLS
    ids[torch.arange(b), lengths - 1] = SEP
    # A token starts a new word with probability 1/pieces_per_word (the first always does).
    starts = torch.rand(b, t, generator=rng) < 1.0 / pieces_per_word
    starts[:, 1] = True
    inner = (pos >= 1) & (pos < lengths[:, None] - 1)
    word_ids = torch.cumsum(starts & inner, dim=1) - 1
    word_ids = torch.where(inner, word_ids, torch.full_like(word_ids, -1))
    return VLBatch(input_ids=ids, text_mask=text_mask, word_ids=word_ids)


def region_batch(b: int, t: int, r: int, rng: torch.Generator, classes: int = 31, dim: int = 8) -> VLBatch:
    """A text batch plus ragged regions: boxes in pixels, features, hard and soft labels, ITM labels."""
    batch = text_batch(b, t, rng)
    counts = torch.randint(1, r + 1, (b,), generator=rng)
    valid = torch.arange(r)[None, :] < counts[:, None]
    xy = torch.rand(b, r, 2, generator=rng) * 60
    boxes = torch.cat([xy, xy + 1 + torch.rand(b, r, 2, generator=rng) * 30], dim=-1)
    soft = torch.rand(b, r, classes, generator=rng).softmax(dim=-1)
    return batch.replace(
        region_features=torch.randn(b, r, dim, generator=rng),
        region_boxes=boxes,
        region_valid=valid,
        region_labels=torch.randint(0, classes, (b, r), generator=rng),
        region_soft_labels=soft,
        itm_label=torch.randint(0, 2, (b,), generator=rng),
    )


def within_three_sigma(count: int, total: int, p: float) -> bool:
    """Binomial check: count / total within 3 standard errors of p."""
    sigma = (p * (1 - p) / total) ** 0.5
    return abs(count / total - p) <= 3 * sigma
