"""A compact ResNet (v1.5, stride on the 3x3 conv) whose parameter names match torchvision's state dict.

So a local torchvision-format checkpoint (``resnet50-*.pth`` / ``resnet101-*.pth``
or a safetensors copy) loads with ``load_state_dict`` without importing
torchvision at run time. BatchNorm can be frozen (statistics and affine fixed,
as Detectron and VL-BERT train the C4 backbone).
"""

from __future__ import annotations

import torch
from torch import nn

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (buffers named like nn.BatchNorm2d's)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)   # BatchNorm2d has it; a frozen BN does not
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)


def _norm(frozen: bool):
    return FrozenBatchNorm2d if frozen else nn.BatchNorm2d


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, frozen_bn: bool = True):
        super().__init__()
        norm = _norm(frozen_bn)
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(in_channels: int, width: int, blocks: int, stride: int, dilation: int, frozen_bn: bool) -> nn.Sequential:
    """One ResNet stage (torchvision's ``layerN``): the first block changes resolution/width."""
    out_channels = width * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   _norm(frozen_bn)(out_channels))
    layers = [Bottleneck(in_channels, width, stride, dilation, downsample, frozen_bn)]
    layers += [Bottleneck(out_channels, width, 1, dilation, None, frozen_bn) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def check_depth(depth: int) -> tuple[int, ...]:
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
    return DEPTHS[depth]
