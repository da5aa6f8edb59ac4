"""Which text tokens may be masked, and the unit (token or whole word) each belongs to."""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch

from ._checks import batch_field


def maskable_tokens(policy: str, batch: VLBatch, special_ids: tuple[int, ...]) -> torch.Tensor:
    """[B, T] bool: real tokens that are not special ([CLS], [SEP], [PAD], [MASK], ...).

    Padding (text_mask False), any id in ``special_ids`` and, when word ids are
    given, tokens with word id -1 are never masked.
    """
    ids = batch_field(policy, batch, "input_ids", (None, None), torch.int64)
    b, t = ids.shape
    mask = batch_field(policy, batch, "text_mask", (b, t), torch.bool)
    maskable = mask & ~torch.isin(ids, torch.tensor(special_ids, dtype=ids.dtype, device=ids.device))
    if batch.word_ids is not None:
        maskable &= batch_field(policy, batch, "word_ids", (b, t), torch.int64) >= 0
    return maskable


def token_units(policy: str, batch: VLBatch, whole_word: bool) -> torch.Tensor:
    """[B, T] int64 unit index of each token, in [0, T): its word id, or its position.

    Draws are made per unit ([B, T] of them) and gathered back to tokens, so
    every token of a word shares its word's decision with no Python loop.
    """
    b, t = batch.input_ids.shape
    if not whole_word:
        return torch.arange(t, device=batch.input_ids.device).expand(b, t)
    if batch.word_ids is None:
        raise ValueError(f"{policy}: whole-word masking needs batch.word_ids (the word index of each token)")
    words = batch_field(policy, batch, "word_ids", (b, t), torch.int64)
    if words.numel() and int(words.max()) >= t:
        raise ValueError(f"{policy}: batch.word_ids must be < the sequence length {t}, got {int(words.max())}")
    return words.clamp(min=0)


def unit_valid(units: torch.Tensor, maskable: torch.Tensor) -> torch.Tensor:
    """[B, T] bool over unit indices: units with at least one maskable token."""
    counts = torch.zeros(units.shape, dtype=torch.int32, device=units.device)
    counts.scatter_add_(1, units, maskable.to(torch.int32))
    return counts > 0
