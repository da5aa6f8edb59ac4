"""BERT's 80/10/10 replacement of selected tokens, decided per unit (token or whole word)."""

from __future__ import annotations

import torch

from vlengine.batch import IGNORE_INDEX


def replace_selected(input_ids: torch.Tensor, selected: torch.Tensor, units: torch.Tensor, mask_token_id: int,
                     random_token_range: tuple[int, int], mask_prob: float, random_prob: float,
                     generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace selected tokens: [MASK] with ``mask_prob``, a random token with ``random_prob``, else kept.

    The choice is drawn once per unit, so all pieces of a whole word get the
    same treatment (VL-BERT's and BERT's whole-word rule); random tokens are
    drawn per token, uniformly from ``random_token_range`` = [low, high).

    Returns (new input ids, labels): labels hold the original id on selected
    tokens and IGNORE_INDEX elsewhere.
    """
    shape, device = input_ids.shape, input_ids.device
    action = torch.rand(shape, generator=generator, device=device).gather(1, units)
    low, high = random_token_range
    random_ids = torch.randint(low, high, shape, generator=generator, device=device, dtype=input_ids.dtype)
    to_mask = selected & (action < mask_prob)
    to_random = selected & (action >= mask_prob) & (action < mask_prob + random_prob)
    new_ids = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    new_ids = torch.where(to_random, random_ids, new_ids)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return new_ids, labels
