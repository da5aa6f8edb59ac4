"""Pure-PyTorch VL-BERT pixel masking: the oracle of vlengine.ops.mask_pixels."""

from __future__ import annotations

import torch

from .masked_cells import masked_cells


def mask_pixels(images: torch.Tensor, boxes: torch.Tensor, fill: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    n, c, h, w = images.shape
    covered = masked_cells(boxes, n, h, w)[:, None]          # [N, 1, H, W]
    value = fill.to(images.dtype).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
    masked = torch.where(covered, value, images)
    if inplace:
        return images.copy_(masked)
    return masked
