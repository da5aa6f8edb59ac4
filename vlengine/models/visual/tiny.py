"""A CPU-sized C4 trunk and RoI head with the layout of VL-BERT's (stem, res2..res4 at stride 16, res5 head).

The ResNet-50/101 C4 trunk costs several GFLOPs per image: too much for the
end-to-end main job on a 2-core CPU. This one keeps what matters to the
pipeline (stride 16, so RoIAlign's 1/16 scale and the 14 x 14 pooling are
VL-BERT's; stem and res2 that can be frozen; frozen BatchNorm; a res5-style head
on the pooled RoIs) with basic blocks of ``width`` .. ``4 * width`` channels.
"""

from __future__ import annotations

from torch import nn

from .backbone import _kaiming, freeze_early_stages
from .resnet import FrozenBatchNorm2d


def _norm(channels: int, frozen: bool) -> nn.Module:
    return FrozenBatchNorm2d(channels) if frozen else nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strided) + a projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, frozen_bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(out_channels, frozen_bn)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = _norm(out_channels, frozen_bn)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            _norm(out_channels, frozen_bn))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TinyC4(nn.Module):
    """[N, 3, H, W] -> [N, 4 * width, H/stride, W/stride]: stem (stride 2), res2..res4 (one basic block each).

    ``stride`` 16 is VL-BERT's C4 (res2..res4 each stride 2). 8 leaves res4 unstrided: the same
    weights on a map twice as fine, for small images. VL-BERT resizes images to a short side of
    600, where an object spans several C4 cells; on the embedded corpus's 128-pixel images a small
    object (14-20 pixels) covers one or two cells at stride 16, and its shape is mostly lost
    (train/README.md, "End to end"). Stride 8 is what a 2x upscaled image gives at stride 16, for
    about a quarter of the trunk's cost.
    """

    STRIDES = (8, 16)

    def __init__(self, width: int = 16, freeze_stem: bool = True, freeze_res2: bool = True, frozen_bn: bool = True,
                 stride: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"TinyC4: width must be >= 1, got {width}")
        if stride not in self.STRIDES:
            raise ValueError(f"TinyC4: stride must be one of {self.STRIDES}, got {stride}")
        self.stride = stride
        self.out_channels = 4 * width
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = _norm(width, frozen_bn)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(width, width, 2, frozen_bn)          # res2, stride 4
        self.layer2 = BasicBlock(width, 2 * width, 2, frozen_bn)      # res3, stride 8
        self.layer3 = BasicBlock(2 * width, 4 * width, stride // 8, frozen_bn)  # res4, stride 16 (or 8)
        _kaiming(self)
        freeze_early_stages(self, freeze_stem, freeze_res2)

    def forward(self, images):
        x = self.relu(self.bn1(self.conv1(images)))
        return self.layer3(self.layer2(self.layer1(x)))


class TinyHead(nn.Module):
    """res5-style head on [K, C, 14, 14] RoIs -> [K, out_features].

    2 x 2 average pooling to 7 x 7 (the stride-2 res5 of Faster R-CNN's C4 head, without its
    cost), then one bottleneck block (1x1 to C/4, 3x3, 1x1 to out_features; identity shortcut
    when out_features == C) and a spatial mean. It runs once per RoI (~8 per image), the trunk
    once per image: kept at a fraction of the trunk's cost.
    """

    def __init__(self, in_channels: int, out_features: int, frozen_bn: bool = True):
        super().__init__()
        mid = max(1, in_channels // 4)
        self.out_channels = out_features
        self.pool = nn.AvgPool2d(2)
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid, 1, bias=False), _norm(mid, frozen_bn), nn.ReLU())
        self.spatial = nn.Sequential(nn.Conv2d(mid, mid, 3, padding=1, bias=False), _norm(mid, frozen_bn), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(mid, out_features, 1, bias=False), _norm(out_features, frozen_bn))
        self.shortcut = nn.Identity() if out_features == in_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_features, 1, bias=False), _norm(out_features, frozen_bn))
        # A random trunk under identity frozen BN gives region features of ~0.1 spread across regions
        # (measured at init on the embedded corpus), next to the unit sin/cos geometry in the same
        # projection: the appearance would need weights ~10x the geometry's before it counts.
        # Pretrained BN statistics set that scale for the ResNets; here a LayerNorm does.
        self.norm = nn.LayerNorm(out_features)
        _kaiming(self)

    def forward(self, rois):
        x = self.pool(rois)
        out = self.expand(self.spatial(self.reduce(x)))
        return self.norm((out + self.shortcut(x)).relu().mean(dim=(2, 3)))

