"""VL-BERT masked RoI classification: 15% of RoIs, 90% masked / 10% kept, soft or hard targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlengine.batch import IGNORE_INDEX, VLBatch

from ._checks import batch_field, generator_for, probability, region_labels, region_valid
from ._regions import masked_rois, targets_where, whole_image_rows, zero_rows


@dataclass(frozen=True)
class RoIMasking:
    """VL-BERT's region masking (its data loader's ``random_mask_region``).

    Each valid region is selected with probability ``select_prob`` (0.15); a
    selected region's input is masked with probability ``mask_prob`` (0.9)
    and kept otherwise, and every selected region is a classification target.
    The region at ``whole_image_index`` (VL-BERT puts the whole-image box at
    0) is never selected in a row where it is a whole-image box (it spans the
    image, to within 2 pixels or 2%); in a row whose region there is an
    ordinary RoI (a store converted without the whole-image box) it is masked
    like any other. Without ``region_boxes`` and ``image_size`` to check, it is never
    selected. ``None``: no region is kept out.

    targets: "soft" (VL-BERT: soft cross-entropy against the detector's
        score vector, ``batch.region_soft_labels``, on the regions where
        ``region_targets != IGNORE_INDEX``; no copy of the [B, R, C] scores
        is made) or "hard" (``batch.region_labels``).
    zero_features: also zero the masked regions' ``region_features`` (for
        models that take precomputed features and have no mask embedding).

    Fills ``region_masked``, ``region_targets`` (hard class, or the argmax of
    the score vector, on selected regions; IGNORE_INDEX elsewhere) and
    ``masked_rois`` ([K, 5] (batch_index, x1, y1, x2, y2) from
    ``region_boxes``, for ``vlengine.ops.mask_pixels`` / ``roi_align_masked``;
    None without boxes).
    """

    select_prob: float = 0.15
    mask_prob: float = 0.9
    targets: str = "soft"
    whole_image_index: int | None = 0
    zero_features: bool = False

    def __post_init__(self):
        name = type(self).__name__
        probability(name, "select_prob", self.select_prob)
        probability(name, "mask_prob", self.mask_prob)
        if self.targets not in ("soft", "hard"):
            raise ValueError(f"{name}: targets must be 'soft' or 'hard', got {self.targets!r}")
        if self.whole_image_index is not None and (not isinstance(self.whole_image_index, int)
                                                   or self.whole_image_index < 0):
            raise ValueError(f"{name}: whole_image_index must be None or an int >= 0, got {self.whole_image_index!r}")

    def __call__(self, batch: VLBatch, generator: torch.Generator | None = None) -> VLBatch:
        name = type(self).__name__
        valid = region_valid(name, batch)
        b, r = valid.shape
        generator = generator_for(name, generator, valid.device)
        if self.whole_image_index is not None and self.whole_image_index < r:
            valid = valid.clone()
            valid[:, self.whole_image_index] &= ~whole_image_rows(name, batch, self.whole_image_index)
        soft = batch_field(name, batch, "region_soft_labels", (b, r, None), floating=True) \
            if self.targets == "soft" else None
        labels = region_labels(name, batch, valid) if soft is None else None
        selected = (torch.rand((b, r), generator=generator, device=valid.device) < self.select_prob) & valid
        masked = selected & (torch.rand((b, r), generator=generator, device=valid.device) < self.mask_prob)

        if soft is not None:  # argmax of the selected rows only: the score tensor is large (C = 1601)
            targets = torch.full((b, r), IGNORE_INDEX, dtype=torch.int64, device=valid.device)
            rows = selected.nonzero(as_tuple=True)
            targets[rows] = soft[rows].argmax(dim=-1)
        else:
            targets = targets_where(selected, labels)
        changes = {"region_masked": masked, "region_targets": targets}
        if batch.region_boxes is not None:
            boxes = batch_field(name, batch, "region_boxes", (b, r, 4), floating=True)
            changes["masked_rois"] = masked_rois(boxes, masked)
        if self.zero_features:
            features = batch_field(name, batch, "region_features", (b, r, None), floating=True)
            changes["region_features"] = zero_rows(features, masked)
        return batch.replace(**changes)
