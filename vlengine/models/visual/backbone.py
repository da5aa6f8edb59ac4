"""VL-BERT's Fast R-CNN parts: a ResNet C4 trunk (stride 16) and a dilated res5 head pooled to 2048."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .resnet import FrozenBatchNorm2d, check_depth, make_stage


class ResNetC4(nn.Module):
    """Stem + res2..res4 (torchvision's conv1/bn1/layer1..layer3): [N, 3, H, W] -> [N, 1024, H/16, W/16].

    Args:
        depth: 50 or 101 (VL-BERT: 101).
        freeze_stem / freeze_res2: no gradient to conv1/bn1 / layer1 (VL-BERT freezes both).
        frozen_bn: FrozenBatchNorm2d everywhere (VL-BERT's choice: batches are 1-2 images per GPU).
    """

    out_channels = 1024
    stride = 16

    def __init__(self, depth: int = 101, freeze_stem: bool = True, freeze_res2: bool = True, frozen_bn: bool = True):
        super().__init__()
        blocks = check_depth(depth)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64) if frozen_bn else nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_stage(64, 64, blocks[0], 1, 1, frozen_bn)
        self.layer2 = make_stage(256, 128, blocks[1], 2, 1, frozen_bn)
        self.layer3 = make_stage(512, 256, blocks[2], 2, 1, frozen_bn)
        _kaiming(self)
        freeze_early_stages(self, freeze_stem, freeze_res2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer3(self.layer2(self.layer1(x)))


class Res5Head(nn.Module):
    """res5 (torchvision's layer4) at stride 1 with dilation 2 on [K, 1024, 14, 14] RoI features, average-pooled -> [K, 2048]."""

    out_channels = 2048

    def __init__(self, depth: int = 101, dilation: int = 2, frozen_bn: bool = True):
        super().__init__()
        self.layer4 = make_stage(1024, 512, check_depth(depth)[3], 1, dilation, frozen_bn)
        _kaiming(self)

    def forward(self, rois: torch.Tensor) -> torch.Tensor:
        return self.layer4(rois).mean(dim=(2, 3))


def freeze_early_stages(trunk: nn.Module, stem: bool, res2: bool) -> None:
    """No gradient to the stem (conv1, bn1) and / or res2 (layer1): Fast R-CNN's and VL-BERT's choice."""
    if stem:
        for p in (*trunk.conv1.parameters(), *trunk.bn1.parameters()):
            p.requires_grad_(False)
    if res2:
        for p in trunk.layer1.parameters():
            p.requires_grad_(False)


def _kaiming(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """A torchvision-format state dict from ``.safetensors`` or a weights-only ``.pth``/``.pt`` file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"backbone weights {path} do not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # corrupt / truncated / not a weights-only archive
        raise ValueError(f"backbone weights {path} cannot be read: {error}") from error
    if not isinstance(state, dict):
        raise ValueError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")
    return state


def load_torchvision_resnet(trunk: ResNetC4, head: Res5Head | None, state_dict) -> None:
    """Fill the trunk (conv1, bn1, layer1-3) and the head (layer4) from a torchvision ResNet state dict.

    ``state_dict`` is a mapping or a file path. The classifier (``fc.*``) is
    ignored; any other missing or unexpected key is an error naming it.
    """
    state = read_state_dict(state_dict) if not isinstance(state_dict, dict) else state_dict
    trunk_state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
    load_state_checked(trunk, trunk_state, "trunk")
    if head is not None:
        load_state_checked(head, {k: v for k, v in state.items() if k.startswith("layer4.")}, "res5 head")


def load_state_checked(module: nn.Module, state: dict, what: str, kind: str = "torchvision ResNet weights") -> None:
    """``module.load_state_dict(state)`` after checking every key and shape, naming the first mismatches."""
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    own = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{kind} do not fit the {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(f"{kind}: {key} has shape {list(value.shape)}, the {what} expects "
                             f"{list(own[key].shape)} (other sizes?)")
    module.load_state_dict(state, strict=False)   # strictness checked above (num_batches_tracked aside)
