"""InterBERT masked region modeling: anchors plus their IoU neighbourhood, features zeroed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlengine.batch import VLBatch
from vlengine.ops import INTERBERT_PAPER, RegionMaskPreset, sample_region_mask

from ._checks import batch_field, generator_for, region_labels, region_valid
from ._regions import targets_where, zero_rows


@dataclass(frozen=True)
class IoURegionMasking:
    """InterBERT's MRM (seed 002, sec. 3.3) through ``vlengine.ops.sample_region_mask``.

    Regions become anchors with ``preset.anchor_prob``; every valid region
    whose IoU with an anchor of its image passes ``preset.threshold`` is
    masked too (so heavily overlapping boxes cannot leak the masked object).
    Masked regions' features are replaced by zero vectors, and their detector
    classes are the targets.

    preset: ``vlengine.ops.INTERBERT_PAPER`` (0.15, IoU > 0.4; default) or
        ``INTERBERT_RELEASED`` (0.1, IoU >= 0.4).
    backend: the op backend (None = fastest available).
    inplace_features: zero the masked rows of ``batch.region_features``
        itself instead of a copy (for batches used once, e.g. fresh from the
        DataLoader).

    Fills ``region_masked``, ``region_features`` (zeroed copy),
    ``region_targets`` (``region_labels`` on masked regions, IGNORE_INDEX
    elsewhere).
    """

    preset: RegionMaskPreset = INTERBERT_PAPER
    backend: str | None = None
    inplace_features: bool = False

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        name = type(self).__name__
        valid = region_valid(name, batch)
        b, r = valid.shape
        boxes = batch_field(name, batch, "region_boxes", (b, r, 4), floating=True)
        features = batch_field(name, batch, "region_features", (b, r, None), floating=True)
        labels = region_labels(name, batch, valid)
        generator = generator_for(name, generator, valid.device)
        masked = sample_region_mask(boxes, valid, generator=generator, backend=self.backend, **self.preset.kwargs())
        return batch.replace(region_masked=masked, region_features=zero_rows(features, masked, self.inplace_features),
                             region_targets=targets_where(masked, labels))
