"""Conditional masking: ITM negatives are masked like every row but carry no MLM/MRM labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from vlengine.batch import IGNORE_INDEX, VLBatch

from ._checks import batch_field

Policy = Callable[[VLBatch, "torch.Generator | None"], VLBatch]


@dataclass(frozen=True)
class ConditionalMasking:
    """Run ``policies`` in order on every row, then drop the labels of ITM negatives (``itm_label == 0``).

    A random caption paired with an image says nothing true about it, so
    InterBERT (following LXMERT), UNITER and SemVLP compute no masked-token or
    masked-region loss on those pairs. Their inputs are masked exactly like
    the positives': were negatives left unmasked, "has no [MASK] token and no
    masked region" would tell the ITM head which pairs are random, and it
    would learn that instead of the image-text match (seen here as ITM
    accuracy near 90% in training with zero-shot retrieval at chance).

    The policies' draws are whole-batch tensors, so the masks do not depend
    on the labels. Without ``batch.itm_label`` this is just the policies in
    order. On negative rows ``mlm_labels`` and ``region_targets`` are
    IGNORE_INDEX; losses that read ``region_masked`` directly (feature
    regression) must restrict it to positive rows
    (``vlengine.tasks.terms.positive_rows``).

    ``one_modality_per_row``: each image row keeps the masking of one modality
    only, text or regions (drawn 50/50 per row; text-only rows keep their
    text), and the other modality's input is restored, so the model fully
    observes it (InterBERT, seed 002 sec. 3.3: "conditional masking is applied
    so that the model can have full observation of the other modality when
    predicting the masked information of one"). The policies' own draws are
    unchanged; the choice is one extra [B] draw after them.
    """

    policies: tuple[Policy, ...]
    one_modality_per_row: bool = False

    def __post_init__(self):
        policies = tuple(self.policies) if not callable(self.policies) else (self.policies,)
        for p in policies:
            if not callable(p):
                raise TypeError(f"ConditionalMasking: every policy must be callable, got {type(p).__name__}")
        object.__setattr__(self, "policies", policies)
        if self.one_modality_per_row and any(getattr(p, "inplace_features", False) for p in policies):
            raise ValueError("ConditionalMasking: one_modality_per_row restores the regions of text-masked rows "
                             "from the input, which a policy with inplace_features=True overwrites")

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        negative = None
        if batch.itm_label is not None:
            negative = batch_field("ConditionalMasking", batch, "itm_label", (batch.batch_size,), torch.int64) == 0
        out = batch
        for policy in self.policies:
            out = policy(out, generator)
        if self.one_modality_per_row:
            out = keep_one_modality(batch, out, generator)
        if negative is None or not bool(negative.any()):
            return out
        unlabelled = {}
        for name in ("mlm_labels", "region_targets"):
            labels = getattr(out, name)
            if labels is not None:
                unlabelled[name] = labels.masked_fill(negative[:, None], IGNORE_INDEX)
        return out.replace(**unlabelled)


def keep_one_modality(original: VLBatch, masked: VLBatch, generator: torch.Generator | None) -> VLBatch:
    """``masked`` with, per image row, either its text or its region masking undone (50/50)."""
    if masked.region_masked is None:
        return masked   # no region policy ran: every row masks text only already
    b = masked.batch_size
    device = masked.region_masked.device
    regions_only = torch.rand(b, generator=generator, device=device) < 0.5
    if masked.text_only is not None:
        regions_only &= ~masked.text_only
    text_rows = ~regions_only
    changes = {"region_masked": masked.region_masked & regions_only[:, None]}
    if masked.mlm_labels is not None:
        changes["input_ids"] = torch.where(regions_only[:, None], original.input_ids, masked.input_ids)
        changes["mlm_labels"] = masked.mlm_labels.masked_fill(regions_only[:, None], IGNORE_INDEX)
    if masked.region_targets is not None:
        changes["region_targets"] = masked.region_targets.masked_fill(text_rows[:, None], IGNORE_INDEX)
    if masked.region_features is not None and masked.region_features is not original.region_features:
        # a policy that zeroed features wrote a copy (a policy writing in place cannot be undone)
        changes["region_features"] = torch.where(text_rows[:, None, None], original.region_features,
                                                 masked.region_features)
    if masked.masked_rois is not None:
        keep = regions_only[masked.masked_rois[:, 0].long()]
        changes["masked_rois"] = masked.masked_rois[keep]
    return masked.replace(**changes)
