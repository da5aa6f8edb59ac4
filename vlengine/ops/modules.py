"""The ops as nn.Modules, as torchvision offers ``RoIAlign`` beside ``roi_align``.

Each module holds the op's settings and calls the function; tensors it owns
(a learnable or fixed temperature, a per-channel fill) are a parameter or a
buffer, so ``.to()``, ``state_dict()`` and DeepSpeed see them.
"""

from __future__ import annotations

import torch
from torch import nn

from .contrastive_loss import contrastive_loss
from .mask_pixels import mask_pixels
from .roi_align_masked import roi_align, roi_align_masked


class RoIAlign(nn.Module):
    """``vlengine.ops.roi_align`` as a module: torchvision's ``RoIAlign`` on vlengine's kernels."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int, aligned: bool = False, *,
                 backend: str | None = None):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.backend = backend

    def forward(self, input: torch.Tensor, rois) -> torch.Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned,
                         backend=self.backend)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")


class RoIAlignMasked(RoIAlign):
    """``vlengine.ops.roi_align_masked`` as a module: ``forward(input, rois, masked_boxes)``."""

    def forward(self, input: torch.Tensor, rois, masked_boxes) -> torch.Tensor:  # type: ignore[override]
        return roi_align_masked(input, rois, masked_boxes, self.output_size, self.spatial_scale,
                                self.sampling_ratio, self.aligned, backend=self.backend)


class MaskPixels(nn.Module):
    """``vlengine.ops.mask_pixels`` as a module; ``fill`` (a scalar or one value per channel) is a buffer."""

    def __init__(self, fill=0.0, inplace: bool = False, *, backend: str | None = None):
        super().__init__()
        self.register_buffer("fill", torch.as_tensor(fill, dtype=torch.float32).clone())
        if self.fill.dim() > 1:
            raise ValueError(f"MaskPixels: fill must be a scalar or one value per channel, got shape "
                             f"{tuple(self.fill.shape)}")
        self.inplace = inplace
        self.backend = backend

    def forward(self, images: torch.Tensor, boxes) -> torch.Tensor:
        return mask_pixels(images, boxes, self.fill, inplace=self.inplace, backend=self.backend)

    def extra_repr(self) -> str:
        fill = self.fill.item() if self.fill.dim() == 0 else self.fill.tolist()
        return f"fill={fill}, inplace={self.inplace}"


class ContrastiveLoss(nn.Module):
    """``vlengine.ops.contrastive_loss`` as a module: ``forward(text, image)``.

    ``temperature`` is an nn.Parameter when ``learnable`` (the op passes its
    gradient), else a buffer (moved with the module, not trained).
    """

    def __init__(self, temperature: float = 0.07, kind: str = "infonce", normalize: bool = True,
                 reduction: str = "mean", learnable: bool = False, group=None, *, backend: str | None = None):
        super().__init__()
        value = float(temperature)
        if not (value > 0 and value != float("inf")):
            raise ValueError(f"ContrastiveLoss: temperature must be positive and finite, got {temperature!r}")
        if learnable:
            self.temperature = nn.Parameter(torch.tensor(value))
        else:
            self.register_buffer("temperature", torch.tensor(value))
        self.kind, self.normalize, self.reduction = kind, normalize, reduction
        self.group, self.backend = group, backend

    @property
    def learnable(self) -> bool:
        return isinstance(self.temperature, nn.Parameter)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(text, image, self.temperature, kind=self.kind, normalize=self.normalize,
                                reduction=self.reduction, group=self.group, backend=self.backend)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature.item():g}, kind={self.kind!r}, normalize={self.normalize}, "
                f"reduction={self.reduction!r}, learnable={self.learnable}")
