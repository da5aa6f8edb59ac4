"""Helpers shared by the region masking policies."""

from __future__ import annotations

import torch

from vlengine.batch import IGNORE_INDEX, VLBatch

from ._checks import batch_field


def targets_where(selected: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, R] int64: ``labels`` on selected regions, IGNORE_INDEX elsewhere."""
    return torch.where(selected, labels, torch.full_like(labels, IGNORE_INDEX))


def zero_rows(features: torch.Tensor, masked: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``features`` [B, R, D] with the masked regions' vectors set to 0.

    Out of place by default (the input is untouched). ``inplace`` writes only the
    masked rows of ``features`` itself: for a [256, 100, 2048] float32 batch that
    saves a 200 MB copy per step when the caller does not reuse the batch.
    """
    if inplace:  # index_fill_ on the rows touches only the masked rows (masked_fill_ reads all of them)
        if features.is_contiguous():
            rows = masked.reshape(-1).nonzero().squeeze(1)
            features.view(-1, features.shape[-1]).index_fill_(0, rows, 0)
        else:
            features[masked] = 0
        return features
    return features.masked_fill(masked[..., None], 0)


def masked_rois(boxes: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """[K, 5] (batch_index, x1, y1, x2, y2) of the masked regions, image by image.

    The form vlengine.ops.mask_pixels and roi_align_masked take. The number of
    masked regions decides K, so this reads ``masked`` (a device sync on GPU).
    """
    index = masked.nonzero()
    return torch.cat([index[:, :1].to(boxes.dtype), boxes[index[:, 0], index[:, 1]]], dim=1)


def whole_image_rows(policy: str, batch: VLBatch, index: int) -> torch.Tensor:
    """[B] bool: rows whose region ``index`` is a box over the whole image (all True when the batch
    has no boxes or sizes to check). A whole-image box is (0, 0, W - 1, H - 1) in the store's
    inclusive-pixel convention, or (0, 0, W, H), and a resize scales the missing pixel with the
    image: the slack on every side is 2 pixels or 2% of the side, whichever is larger."""
    b = batch.batch_size
    if batch.region_boxes is None or batch.image_size is None:
        return torch.ones(b, dtype=torch.bool, device=batch.input_ids.device)
    boxes = batch_field(policy, batch, "region_boxes", (b, None, 4), floating=True)[:, index].float()
    size = batch_field(policy, batch, "image_size", (b, 2), floating=True).float()
    height, width = size[:, 0], size[:, 1]
    slack_x, slack_y = (0.02 * width).clamp(min=2.0), (0.02 * height).clamp(min=2.0)
    return ((boxes[:, 0] <= slack_x) & (boxes[:, 1] <= slack_y)
            & (boxes[:, 2] >= width - slack_x) & (boxes[:, 3] >= height - slack_y))
