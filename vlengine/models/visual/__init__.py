"""End-to-end visual front-end (VL-BERT's Fast R-CNN): ResNet C4 trunk, masked RoIAlign, dilated res5 head."""

from .backbone import Res5Head, ResNetC4, load_state_checked, load_torchvision_resnet, read_state_dict
from .frontend import VisualFrontEnd, mask_pixels_python
from .resnet import FrozenBatchNorm2d
from .tiny import TinyC4, TinyHead


def resnet_c4_frontend(depth: int = 101, weights=None, freeze_stem: bool = True, freeze_res2: bool = True,
                       frozen_bn: bool = True, mask_mode: str = "pixels", feature_mask_margin: int = 0) -> VisualFrontEnd:
    """VL-BERT's front-end: ResNet-``depth`` C4 + res5 (dilation 2) head, weights from a torchvision state dict."""
    trunk = ResNetC4(depth, freeze_stem, freeze_res2, frozen_bn)
    head = Res5Head(depth, dilation=2, frozen_bn=frozen_bn)
    if weights is not None:
        load_torchvision_resnet(trunk, head, weights)
    return VisualFrontEnd(trunk, head, stride=16, output_size=14, sampling_ratio=1, aligned=False,
                          mask_mode=mask_mode, feature_mask_margin=feature_mask_margin)


def tiny_c4_frontend(width: int = 16, out_features: int = 64, freeze_stem: bool = True, freeze_res2: bool = True,
                     frozen_bn: bool = True, mask_mode: str = "pixels", stride: int = 16,
                     feature_mask_margin: int = 0) -> VisualFrontEnd:
    """The CPU-sized front-end (tiny.py): VL-BERT's RoIAlign 14 x 14 and freezing on a small trunk of
    stride 16 (VL-BERT's) or 8."""
    trunk = TinyC4(width, freeze_stem, freeze_res2, frozen_bn, stride)
    head = TinyHead(trunk.out_channels, out_features, frozen_bn)
    return VisualFrontEnd(trunk, head, stride=trunk.stride, output_size=14, sampling_ratio=1, aligned=False,
                          mask_mode=mask_mode, feature_mask_margin=feature_mask_margin)


def load_tiny_frontend(frontend: VisualFrontEnd, weights) -> None:
    """Fill a tiny front-end (trunk + head) from the state dict its detector stage saved (a file or a mapping)."""
    if isinstance(weights, dict):
        state = weights
    else:
        state = read_state_dict(weights)
        _check_saved_stride(weights, frontend.trunk.stride)
    load_state_checked(frontend, state, f"tiny front-end (width {frontend.trunk.out_channels // 4}, "
                       f"{frontend.head.out_channels} features)", kind="front-end weights")


def _check_saved_stride(path, stride: int) -> None:
    """Both strides have the same tensors: only a detector-stage file's metadata tells them apart."""
    if not str(path).endswith(".safetensors"):
        return
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:   # readable: read_state_dict has just read it
        saved = (f.metadata() or {}).get("stride")
    if saved is not None and saved != str(stride):
        raise ValueError(f"front-end weights: {path} were trained at stride {saved}, this front-end has stride "
                         f"{stride} (set model.visual.stride: {saved})")


__all__ = ["FrozenBatchNorm2d", "Res5Head", "ResNetC4", "TinyC4", "TinyHead", "VisualFrontEnd", "load_tiny_frontend", "load_torchvision_resnet",
           "mask_pixels_python", "resnet_c4_frontend", "tiny_c4_frontend"]
