"""VL-BERT's end-to-end visual front-end: pixel masking -> C4 trunk -> RoIAlign 14 x 14 -> res5 head -> 2048."""

from __future__ import annotations

import torch
from torch import nn

from vlengine.ops import mask_pixels, roi_align_masked

MASK_MODES = ("pixels", "feature_map", "none", "pixels_python")


def mask_pixels_python(images: torch.Tensor, rois: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """The per-box Python loop of VL-BERT's data loader (the plain baseline of ``mask_pixels``)."""
    images = images.clone()
    for n, x1, y1, x2, y2 in rois.tolist():
        images[int(n), :, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = fill
    return images


class VisualFrontEnd(nn.Module):
    """Region features from raw images, computed so masked regions leak nothing.

    Args:
        trunk: any module mapping [B, 3, H, W] -> [B, C, H/stride, W/stride] (e.g. ``ResNetC4``).
        head: any module mapping [K, C, 14, 14] RoI features -> [K, F] (or [K, F, h, w], average-pooled),
            e.g. ``Res5Head``.
        stride: the trunk's output stride (16 for C4): RoIAlign's spatial scale is 1 / stride.
        output_size: RoIAlign output (VL-BERT: 14).
        sampling_ratio: samples per bin (VL-BERT: 1); aligned: False = legacy Detectron RoIAlign.
        mask_mode: "pixels" (VL-BERT: masked boxes filled with ``fill`` before the trunk, one batched
            ``vlengine.ops.mask_pixels`` call), "feature_map" (cheaper: masked boxes zeroed on the
            C4 map inside ``roi_align_masked``), "none", or "pixels_python" (the per-box loop baseline).
        fill: the pixel value of masked boxes (0 = the mean pixel after normalisation).
        feature_mask_margin: "feature_map" only: the masked boxes grow by this many cells of the map
            on every side before their cells are zeroed. A cell beside a box saw the object through
            the trunk's receptive field, and the whole-image RoI and overlapping RoIs read it; a margin
            of one or two cells removes most of that (train/README.md, "End to end", has the leak).

    ``forward(images, boxes, valid, masked, image_size)`` returns (region features
    [B, R, F] (zeros at invalid regions), whole-image features [B, F]). The whole-image
    box (VL-BERT's object 0) is never masked itself but sees the masked pixels.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, stride: int = 16, output_size: int = 14,
                 sampling_ratio: int = 1, aligned: bool = False, mask_mode: str = "pixels", fill: float = 0.0,
                 feature_mask_margin: int = 0):
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"VisualFrontEnd: mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if feature_mask_margin < 0:
            raise ValueError(f"VisualFrontEnd: feature_mask_margin must be >= 0 cells, got {feature_mask_margin}")
        self.feature_mask_margin = int(feature_mask_margin)
        self.trunk, self.head = trunk, head
        self.spatial_scale = 1.0 / stride
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.mask_mode = mask_mode
        self.fill = fill

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                masked: torch.Tensor | None, image_size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
            raise ValueError(f"VisualFrontEnd: images must be a floating [B, 3, H, W] tensor, got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {list(getattr(images, 'shape', []))}")
        b, _, height, width = images.shape
        if boxes.shape[0] != b or valid.shape != boxes.shape[:2]:
            raise ValueError(f"VisualFrontEnd: boxes [B, R, 4] and valid [B, R] must match images' batch {b}, "
                             f"got {list(boxes.shape)} and {list(valid.shape)}")
        pictured = valid.any(1)
        if bool(pictured.any()) and not bool(pictured.all()):
            # Text-only rows mixed into the batch carry a blank image slot: the trunk would spend a
            # fifth of VL-BERT's step on them (8 text rows per 32 captions). Run the rows with regions.
            features, whole = self._forward(images[pictured], boxes[pictured], valid[pictured],
                                            masked[pictured] if masked is not None else None, image_size)
            out = features.new_zeros((images.shape[0], *features.shape[1:]))
            out[pictured] = features
            whole_out = whole.new_zeros((images.shape[0], whole.shape[1]))
            whole_out[pictured] = whole
            return out, whole_out
        return self._forward(images, boxes, valid, masked, image_size)

    def _forward(self, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                 masked: torch.Tensor | None, image_size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, height, width = images.shape
        # VL-BERT clamps boxes to the image before both masking and pooling.
        upper = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=boxes.dtype, device=boxes.device)
        boxes = torch.minimum(boxes.clamp_min(0), upper)
        rows = torch.arange(b, device=boxes.device, dtype=boxes.dtype).view(b, 1, 1).expand(b, boxes.shape[1], 1)
        all_rois = torch.cat((rows, boxes), dim=-1)                            # [B, R, 5]
        masked_rois = all_rois[valid & masked] if masked is not None else all_rois.new_zeros((0, 5))

        if self.mask_mode == "pixels":
            images = mask_pixels(images, masked_rois, self.fill)
        elif self.mask_mode == "pixels_python":
            images = mask_pixels_python(images, masked_rois, self.fill)
        feature_map = self.trunk(images)

        whole = torch.tensor([0.0, 0.0, width - 1, height - 1], dtype=boxes.dtype, device=boxes.device)
        whole_rois = torch.cat((torch.arange(b, dtype=boxes.dtype, device=boxes.device).unsqueeze(1),
                                whole.expand(b, 4)), dim=1)
        rois = torch.cat((all_rois[valid], whole_rois))
        feature_masks = self._grown(masked_rois, upper) if self.mask_mode == "feature_map" else masked_rois[:0]
        pooled = roi_align_masked(feature_map, rois.to(feature_map.dtype), feature_masks.to(feature_map.dtype),
                                  self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)
        features = self.head(pooled)
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        num_regions = int(valid.sum())
        out = features.new_zeros((b, boxes.shape[1], features.shape[-1]))
        out[valid] = features[:num_regions]
        return out, features[num_regions:]

    def _grown(self, rois: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        """``rois`` [M, 5] with each box grown by ``feature_mask_margin`` cells (clamped to the image)."""
        if self.feature_mask_margin == 0:
            return rois
        pad = self.feature_mask_margin / self.spatial_scale   # cells -> input pixels
        boxes = torch.minimum((rois[:, 1:] + rois.new_tensor([-pad, -pad, pad, pad])).clamp_min(0), upper)
        return torch.cat((rois[:, :1], boxes), dim=1)
