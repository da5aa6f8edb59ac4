"""Input checks shared by the public ops, with messages that name the argument.

Shape, dtype and device checks always run. Value checks (finite coordinates,
x2 >= x1, integral batch indices in range) read the data, which costs a device
sync on the GPU: they run in eager mode unless switched off with
``set_value_checks(False)`` (or VLENGINE_VALUE_CHECKS=0), and are skipped while
torch.compile traces, where the kernels' own bounds guards still keep every
read in range.
"""

from __future__ import annotations

import math
import os

import torch

_value_checks = os.environ.get("VLENGINE_VALUE_CHECKS", "1") != "0"


def set_value_checks(enabled: bool) -> None:
    """Turn the data-reading input checks on or off (shape/dtype/device checks always run)."""
    global _value_checks
    _value_checks = bool(enabled)


def value_checks_enabled() -> bool:
    return _value_checks and not torch.compiler.is_compiling()


def check_tensor(op: str, name: str, t, *, ndim: int | None = None, floating: bool = False) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}")


def check_same_device(op: str, **tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, torch.Tensor)}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise RuntimeError(f"{op}: all tensors must be on one device, got {listing}")


def check_rois(op: str, name: str, boxes: torch.Tensor, batch_size: int) -> None:
    """[K, 5] boxes (batch_index, x1, y1, x2, y2): shape always, values when enabled."""
    check_tensor(op, name, boxes, ndim=2, floating=True)
    if boxes.shape[1] != 5:
        raise ValueError(f"{op}: {name} must be [K, 5] (batch_index, x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if boxes.shape[0] == 0 or not value_checks_enabled():
        return
    b = boxes.detach().double()
    if not torch.isfinite(b).all():
        k = int((~torch.isfinite(b)).any(1).nonzero()[0])
        raise ValueError(f"{op}: {name}[{k}] has a non-finite value: {b[k].tolist()}")
    idx = b[:, 0]
    bad = (idx != idx.floor()) | (idx < 0) | (idx >= batch_size)
    if bad.any():
        k = int(bad.nonzero()[0])
        raise ValueError(f"{op}: {name}[{k}] has batch index {idx[k].item()}, expected an integer in [0, {batch_size})")
    inverted = (b[:, 3] < b[:, 1]) | (b[:, 4] < b[:, 2])
    if inverted.any():
        k = int(inverted.nonzero()[0])
        raise ValueError(f"{op}: {name}[{k}] has x2 < x1 or y2 < y1: {b[k, 1:].tolist()}")


def boxes_to_rois(op: str, name: str, boxes, like: torch.Tensor) -> torch.Tensor:
    """torchvision's two box forms -> [K, 5]: a [K, 5] tensor, or a list of [L_i, 4] tensors (one per image)."""
    if isinstance(boxes, torch.Tensor):
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"{op}: {name} must be a [K, 5] tensor or a list of [L, 4] tensors, got {type(boxes).__name__}")
    parts = []
    for i, b in enumerate(boxes):
        check_tensor(op, f"{name}[{i}]", b, ndim=2, floating=True)
        if b.shape[1] != 4:
            raise ValueError(f"{op}: {name}[{i}] must be [L, 4] (x1, y1, x2, y2), got shape {tuple(b.shape)}")
        parts.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
    if not parts:
        return like.new_zeros((0, 5))
    return torch.cat(parts, dim=0)


def pair(op: str, name: str, value) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if a <= 0 or b <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    return a, b


def check_boxes(op: str, name: str, boxes, valid: torch.Tensor | None = None, *, values: bool = True) -> None:
    """[B, N, 4] floating (x1, y1, x2, y2) boxes: shape always; finite, x2 >= x1, y2 >= y1 when value checks run.

    With ``valid`` ([B, N] bool), only valid boxes are value-checked: padding may hold anything.
    """
    check_tensor(op, name, boxes, ndim=3, floating=True)
    if boxes.shape[2] != 4:
        raise ValueError(f"{op}: {name} must be [B, N, 4] (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if not values or boxes.numel() == 0 or not value_checks_enabled():
        return
    b = boxes.detach()
    finite = torch.isfinite(b).all(dim=2)
    inverted = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
    if valid is not None:
        finite, inverted = finite | ~valid, inverted & valid
    if not finite.all():
        i, j = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(f"{op}: {name}[{i}, {j}] has a non-finite value: {b[i, j].tolist()}")
    if inverted.any():
        i, j = (int(v) for v in inverted.nonzero()[0])
        raise ValueError(f"{op}: {name}[{i}, {j}] has x2 < x1 or y2 < y1: {b[i, j].tolist()}")


def check_flags(op: str, name: str, flags, boxes: torch.Tensor) -> None:
    check_tensor(op, name, flags, ndim=2)
    if flags.dtype != torch.bool:
        raise TypeError(f"{op}: {name} must be a bool tensor, got {flags.dtype}")
    if tuple(flags.shape) != tuple(boxes.shape[:2]):
        raise ValueError(f"{op}: {name} must be [B, N] = {list(boxes.shape[:2])} like boxes, "
                         f"got shape {tuple(flags.shape)}")


def check_threshold(op: str, threshold) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: threshold must be a number, got {threshold!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{op}: threshold must be an IoU in [0, 1], got {threshold!r}")
    return value
