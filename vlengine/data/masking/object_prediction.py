"""SemVLP masked object prediction: 15% of regions zeroed; feature regression and label targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlengine.batch import IGNORE_INDEX, VLBatch

from ._checks import batch_field, generator_for, probability, region_labels, region_valid
from ._regions import targets_where, zero_rows


@dataclass(frozen=True)
class ObjectPredictionMasking:
    """SemVLP's masked object prediction (seed 004): each valid region is
    masked with probability ``prob`` (0.15) and its feature vector replaced by
    zeros; the model regresses the original feature and classifies the
    detector label.

    Fills ``region_masked``, ``region_features`` (zeroed copy),
    ``region_feature_targets`` (the original features; the loss reads them
    where ``region_masked``) and ``region_targets`` (``region_labels`` on
    masked regions, IGNORE_INDEX elsewhere; all IGNORE_INDEX when the batch
    has no labels, leaving regression only).
    """

    prob: float = 0.15

    def __post_init__(self):
        probability(type(self).__name__, "prob", self.prob)

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        name = type(self).__name__
        valid = region_valid(name, batch)
        b, r = valid.shape
        features = batch_field(name, batch, "region_features", (b, r, None), floating=True)
        generator = generator_for(name, generator, valid.device)
        masked = (torch.rand((b, r), generator=generator, device=valid.device) < self.prob) & valid
        changes = {"region_masked": masked, "region_features": zero_rows(features, masked),
                   "region_feature_targets": features}
        if batch.region_labels is not None:
            changes["region_targets"] = targets_where(masked, region_labels(name, batch, valid))
        else:
            changes["region_targets"] = torch.full((b, r), IGNORE_INDEX, dtype=torch.int64, device=valid.device)
        return batch.replace(**changes)
