"""Conditional masking: ITM negatives keep their inputs and get no MLM/MRM labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vlengine.data.batch import VLBatch

from ._checks import batch_field

Policy = Callable[[VLBatch, "torch.Generator | None"], VLBatch]


@dataclass(frozen=True)
class ConditionalMasking:
    """Run ``policies`` in order, leaving ITM negatives (``itm_label == 0``) unmasked and unlabelled.

    A random caption paired with an image says nothing true about it, so
    InterBERT, UNITER and SemVLP compute no masked-token or masked-region loss
    on those pairs, and the ITM head sees them unmasked. The policies run on
    the batch with the negative rows marked as padding (``text_mask`` and
    ``region_valid`` False there), so nothing on them is masked or labelled
    and nothing has to be copied back; the real masks are put back in the
    result. Draws are whole-batch tensors, so the random stream, and the
    masks of positive rows, do not depend on the labels. Without
    ``batch.itm_label`` this is just the policies in order.

    On negative rows: ``input_ids`` and ``region_features`` are unchanged,
    ``mlm_labels`` and ``region_targets`` are IGNORE_INDEX, ``region_masked``
    is False, and ``masked_rois`` has none of their boxes.
    """

    policies: tuple[Policy, ...]

    def __post_init__(self):
        policies = tuple(self.policies) if not callable(self.policies) else (self.policies,)
        for p in policies:
            if not callable(p):
                raise TypeError(f"ConditionalMasking: every policy must be callable, got {type(p).__name__}")
        object.__setattr__(self, "policies", policies)

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        if batch.itm_label is None:
            out = batch
            for policy in self.policies:
                out = policy(out, generator)
            return out
        name = "ConditionalMasking"
        negative = batch_field(name, batch, "itm_label", (batch.batch_size,), torch.int64) == 0
        hidden = {"text_mask": batch_field(name, batch, "text_mask", tuple(batch.input_ids.shape), torch.bool)
                  & ~negative[:, None]}
        if batch.region_valid is not None:
            hidden["region_valid"] = batch_field(name, batch, "region_valid", (batch.batch_size, None),
                                                 torch.bool) & ~negative[:, None]
        out = batch.replace(**hidden)
        for policy in self.policies:
            out = policy(out, generator)
        return out.replace(text_mask=batch.text_mask, region_valid=batch.region_valid)
