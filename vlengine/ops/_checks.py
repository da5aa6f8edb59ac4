"""Input checks shared by the public ops, with messages that name the argument.

Shape, dtype and device checks always run. Value checks (finite coordinates,
x2 >= x1, integral batch indices in range) read the data, which costs a device
sync on the GPU: they run in eager mode unless switched off with
``set_value_checks(False)`` (or VLENGINE_VALUE_CHECKS=0), and are skipped while
torch.compile traces, where the kernels' own bounds guards still keep every
read in range.
"""

from __future__ import annotations

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
