"""The batch every loader yields and every model/objective consumes.

One contract shared by vlengine.data (producer), vlengine.data.masking (which
adds the masked inputs and labels), vlengine.models and vlengine.tasks
(consumers). It lives on the package's ground floor, not in vlengine.data, so
that models and data stand side by side and neither imports the other. All
fields are tensors with a leading batch dimension B, padded to the longest row;
padding is marked by the *_mask / region_valid fields.

Besides the fields, the batch offers the views its consumers derive from them
(one definition each instead of a copy per model): ``valid_regions``,
``image_rows``, ``image_regions``, ``rows_with_regions``, ``cls_index``,
``text_lengths``, ``num_regions``, ``num_tokens``, and ``to(device, dtype)``.

Label convention (one for the whole engine): positions that carry no target
hold IGNORE_INDEX (-100), which torch.nn.functional.cross_entropy skips.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

IGNORE_INDEX = -100

# Inputs that `VLBatch.to(device, dtype)` casts to a half-precision compute dtype (the engine's
# weights are in it); everything else keeps its dtype.
FLOATING_INPUTS = ("region_features", "images", "region_feature_targets")


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
    itm_label: torch.Tensor | None = None         # [B] int64, 1 = matched pair, 0 = random caption,
                                                  # IGNORE_INDEX = not an ITM example (a QA row)
    qa_label: torch.Tensor | None = None          # [B] int64 answer class of a question row (SemVLP's image QA
                                                  # pretraining), IGNORE_INDEX on every other row
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

    def to(self, device, dtype: torch.dtype | None = None, non_blocking: bool = False) -> "VLBatch":
        """The batch with every tensor (also in ``extras``) on ``device``.

        ``dtype`` is the dtype the model computes in. A half-precision engine
        (float16 / bfloat16) holds its weights in it, so the floating inputs
        (``FLOATING_INPUTS``) are cast to it; every other field keeps its dtype.
        ``None`` or ``torch.float32`` leave every stored dtype as it is: float16
        store features stay float16, and the models upcast where they compute.
        """
        cast = dtype if dtype is not None and dtype != torch.float32 else None
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                if cast is not None and f.name in FLOATING_INPUTS and value.is_floating_point():
                    value = value.to(device, dtype=cast, non_blocking=non_blocking)
                else:
                    value = value.to(device, non_blocking=non_blocking)
            elif isinstance(value, dict):
                value = {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                         for k, v in value.items()}
            moved[f.name] = value
        return VLBatch(**moved)

    def replace(self, **changes) -> "VLBatch":
        return replace(self, **changes)

    # ---- derived views: each computed from the fields on every access (a batch is
    # ---- immutable by convention: changes go through replace, which returns a new batch)

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def num_regions(self) -> int:
        """R, the padded region count (0 for a batch without regions)."""
        regions = self.region_boxes if self.region_boxes is not None else self.region_features
        return 0 if regions is None else regions.shape[1]

    @property
    def cls_index(self) -> torch.Tensor:
        """[B] int64 position of [CLS] in each row: the first real text token."""
        return self.text_mask.int().argmax(1)

    @property
    def text_lengths(self) -> torch.Tensor:
        """[B] int64 real text tokens per row ([CLS] and [SEP] included)."""
        return self.text_mask.sum(1)

    @property
    def num_tokens(self) -> int:
        """Real (non-padding) positions of the whole batch: text tokens plus the regions marked
        in ``region_valid`` (the throughput count; reads the masks, a device sync on a GPU)."""
        tokens = int(self.text_mask.sum())
        if self.region_valid is not None:
            tokens += int(self.region_valid.sum())
        return tokens

    @property
    def image_rows(self) -> torch.Tensor:
        """[B] bool: rows paired with an image (not text-only); all rows when ``text_only`` is None."""
        if self.text_only is None:
            return torch.ones(self.batch_size, dtype=torch.bool, device=self.input_ids.device)
        return ~self.text_only

    @property
    def valid_regions(self) -> torch.Tensor | None:
        """[B, R] bool: ``region_valid``, or every region when the batch gives no validity;
        None for a batch without regions."""
        if self.region_valid is not None:
            return self.region_valid
        if self.region_boxes is None and self.region_features is None:
            return None
        return torch.ones((self.batch_size, self.num_regions), dtype=torch.bool, device=self.input_ids.device)

    @property
    def image_regions(self) -> torch.Tensor | None:
        """[B, R] bool: the valid regions of image rows (a text-only row has none); the regions a
        model embeds and a masking policy may mask. None for a batch without regions."""
        valid = self.valid_regions
        if valid is None or self.text_only is None:
            return valid
        return valid & ~self.text_only.unsqueeze(1)

    @property
    def rows_with_regions(self) -> torch.Tensor:
        """[B] bool: image rows with at least one valid region."""
        regions = self.image_regions
        if regions is None:
            return torch.zeros(self.batch_size, dtype=torch.bool, device=self.input_ids.device)
        return regions.any(1)
