"""The batch every loader yields and every model/objective consumes.

One contract shared by vlengine.data (producer), vlengine.data.masking (which
adds the masked inputs and labels), vlengine.models and vlengine.tasks
(consumers). All fields are tensors with a leading batch dimension B, padded
to the longest row; padding is marked by the *_mask / region_valid fields.

Label convention (one for the whole engine): positions that carry no target
hold IGNORE_INDEX (-100), which torch.nn.functional.cross_entropy skips.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

IGNORE_INDEX = -100


@dataclass
class VLBatch:
    # text: WordPiece ids of "[CLS] tokens [SEP]" (models add region tokens themselves)
    input_ids: torch.Tensor                       # [B, T] int64
    text_mask: torch.Tensor                       # [B, T] bool, True on real tokens
    # word index of each token (-1 on [CLS]/[SEP]/padding): for whole-word and span masking
    word_ids: torch.Tensor | None = None          # [B, T] int64
    # regions (absent for a text-only batch)
    region_features: torch.Tensor | None = None   # [B, R, 2048] float16/float32 (precomputed-feature mode)
    region_boxes: torch.Tensor | None = None      # [B, R, 4] float32, pixels (x1, y1, x2, y2)
    region_valid: torch.Tensor | None = None      # [B, R] bool
    region_labels: torch.Tensor | None = None     # [B, R] int64 detector class, IGNORE_INDEX where unknown
    region_soft_labels: torch.Tensor | None = None  # [B, R, num_classes] float, detector scores
    image_size: torch.Tensor | None = None        # [B, 2] float32 (height, width) in pixels
    images: torch.Tensor | None = None            # [B, 3, H, W] float32, normalised (raw-image mode)
    # per-row flags
    text_only: torch.Tensor | None = None         # [B] bool, rows from the text-only corpus
    itm_label: torch.Tensor | None = None         # [B] int64, 1 = matched pair, 0 = random caption
    # filled by the masking policies (vlengine.data.masking)
    mlm_labels: torch.Tensor | None = None        # [B, T] int64, IGNORE_INDEX where not masked
    region_masked: torch.Tensor | None = None     # [B, R] bool, regions whose input is masked
    region_targets: torch.Tensor | None = None    # [B, R] int64 class targets, IGNORE_INDEX elsewhere
    region_feature_targets: torch.Tensor | None = None  # [B, R, 2048] original features (MOP regression)
    # segment of each text token: 0 = A, 1 = B (sentence pairs for NSP); None means all A
    token_type_ids: torch.Tensor | None = None    # [B, T] int64
    # free-form extras (e.g. VQA answer scores, referring target box, sample ids)
    extras: dict | None = None
    # also filled by the masking policies (VL-BERT's masked RoI classification)
    masked_rois: torch.Tensor | None = None          # [K, 5] (batch_index, x1, y1, x2, y2) of the masked regions,
                                                     # the box form of vlengine.ops.mask_pixels / roi_align_masked

    def to(self, device, non_blocking: bool = False) -> "VLBatch":
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=non_blocking)
            elif isinstance(value, dict):
                value = {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                         for k, v in value.items()}
            moved[f.name] = value
        return VLBatch(**moved)

    def replace(self, **changes) -> "VLBatch":
        return replace(self, **changes)

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]
