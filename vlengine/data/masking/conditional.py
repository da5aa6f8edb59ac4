"""Conditional masking: ITM negatives keep their inputs and get no MLM/MRM labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vlengine.data.batch import IGNORE_INDEX, VLBatch

from ._checks import batch_field

Policy = Callable[[VLBatch, "torch.Generator | None"], VLBatch]


@dataclass(frozen=True)
class ConditionalMasking:
    """Run ``policies`` in order, then undo them on ITM negatives (``itm_label == 0``).

    A random caption paired with an image says nothing true about it, so
    InterBERT, UNITER and SemVLP compute no masked-token or masked-region loss
    on those pairs, and the ITM head sees them unmasked. Rows are drawn for
    every pair (negatives included), so the random stream does not depend on
    the labels. Without ``batch.itm_label`` this is just the policies in order.

    On negative rows: ``input_ids`` and ``region_features`` are the originals,
    ``mlm_labels`` and ``region_targets`` are IGNORE_INDEX, ``region_masked``
    is False, and their boxes are dropped from ``masked_rois``.

    Policies must return new tensors for the fields they change (all of this
    package's do): the originals are copied back into them in place, row by
    row, so restoring costs only the negative rows.
    """

    policies: tuple[Policy, ...]

    def __post_init__(self):
        policies = tuple(self.policies) if not callable(self.policies) else (self.policies,)
        for p in policies:
            if not callable(p):
                raise TypeError(f"ConditionalMasking: every policy must be callable, got {type(p).__name__}")
        object.__setattr__(self, "policies", policies)

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        out = batch
        for policy in self.policies:
            out = policy(out, generator)
        if batch.itm_label is None:
            return out
        negative = batch_field("ConditionalMasking", batch, "itm_label", (batch.batch_size,), torch.int64) == 0
        return _drop_on_rows(batch, out, negative)


def _drop_on_rows(original: VLBatch, masked: VLBatch, rows: torch.Tensor) -> VLBatch:
    """``masked`` with ``rows`` restored to ``original`` inputs and stripped of masking targets."""
    changes = {}
    col = rows[:, None]

    def restore(name):
        before, after = getattr(original, name), getattr(masked, name)
        if after is not None and after is not before:
            after[rows] = before[rows]  # `after` is the policy's own new tensor
            changes[name] = after

    restore("input_ids")
    restore("region_features")
    for name in ("mlm_labels", "region_targets"):
        value = getattr(masked, name)
        if value is not None:
            changes[name] = value.masked_fill(col, IGNORE_INDEX)
    if masked.region_masked is not None:
        changes["region_masked"] = masked.region_masked & ~col
    if masked.masked_rois is not None:
        keep = ~rows[masked.masked_rois[:, 0].long()]
        changes["masked_rois"] = masked.masked_rois[keep]
    return masked.replace(**changes)
