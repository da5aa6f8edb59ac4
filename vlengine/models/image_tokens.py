"""The image sequence of the two-stream-capable models (InterBERT, SemVLP): [IMG] followed by the regions."""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch

from .pooler import masked_mean
from .region_embedding import whole_image_boxes


def normalized_boxes(boxes: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
    """(x1/W, y1/H, x2/W, y2/H, w*h/(W*H)): [B, R, 5] box position features in [0, 1] for in-image boxes."""
    h = image_size[:, 0].view(-1, 1).float()
    w = image_size[:, 1].view(-1, 1).float()
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    area = (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0) / (w * h)
    return torch.stack((x1 / w, y1 / h, x2 / w, y2 / h, area), dim=-1)


def image_sequence(batch: VLBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features [B, 1+R, F], boxes [B, 1+R, 4], mask [B, 1+R]) with the [IMG] token first.

    Masked regions' features are zeroed (InterBERT's and SemVLP's masking); the
    [IMG] feature is the mean of the valid, unmasked region features (InterBERT's
    "o_[CLS]"), with the whole-image box. [IMG] is present on every row, even one
    without regions, so each stream always has a real token to attend to.
    """
    features = batch.region_features
    b = features.shape[0]
    valid = batch.image_regions
    masked = batch.region_masked if batch.region_masked is not None else torch.zeros_like(valid)
    features = features.masked_fill(masked.unsqueeze(-1), 0.0)
    image_feature = masked_mean(features.float(), valid & ~masked).to(features.dtype)
    features = torch.cat((image_feature.unsqueeze(1), features), dim=1)
    boxes = torch.cat((whole_image_boxes(batch.image_size).to(batch.region_boxes.dtype), batch.region_boxes), dim=1)
    mask = torch.cat((torch.ones((b, 1), dtype=torch.bool, device=valid.device), valid), dim=1)
    return features, boxes, mask
