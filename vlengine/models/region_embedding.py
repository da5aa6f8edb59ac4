"""VL-BERT's visual feature embedding: RoI appearance (2048) ++ sin/cos geometry (2048) -> hidden size."""

from __future__ import annotations

import torch
from torch import nn

from .config import VLConfig
from .geometry import box_geometry_embedding


class RegionFeatureProjection(nn.Module):
    """cat(appearance, geometry) -> Dropout -> Linear(4096, H) -> ReLU (``common/fast_rcnn.py: obj_downsample``)."""

    def __init__(self, config: VLConfig):
        super().__init__()
        self.num_frequencies = config.geometry_frequencies
        self.wave_length = config.geometry_wave_length
        self.box_form = config.box_geometry
        self.dropout = nn.Dropout(config.visual_dropout)
        self.linear = nn.Linear(config.region_feature_size + config.geometry_size, config.hidden_size)

    def forward(self, appearance: torch.Tensor, boxes: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
        """appearance [B, R, F], boxes [B, R, 4] pixels, image_size [B, 2] -> [B, R, H]."""
        geometry = box_geometry_embedding(boxes, image_size, self.num_frequencies, self.wave_length, self.box_form)
        weight_dtype = self.linear.weight.dtype
        x = torch.cat((appearance.to(weight_dtype), geometry.to(weight_dtype)), dim=-1)
        return torch.relu(self.linear(self.dropout(x)))


def whole_image_boxes(image_size: torch.Tensor) -> torch.Tensor:
    """[B, 1, 4] box (0, 0, w - 1, h - 1) covering each image (VL-BERT's object 0)."""
    h, w = image_size[:, 0], image_size[:, 1]
    zeros = torch.zeros_like(h)
    return torch.stack((zeros, zeros, w - 1, h - 1), dim=-1).unsqueeze(1).float()
