"""Argument checks shared by the masking policies, with messages that name the field."""

from __future__ import annotations

import math

import torch

from vlengine.batch import VLBatch


def probability(policy: str, name: str, value) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{policy}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"{policy}: {name} must be a probability in [0, 1], got {value!r}")
    return p


def generator_for(policy: str, generator, device: torch.device):
    """The generator to draw with: checked to be a torch.Generator on ``device``'s type."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{policy}: generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise RuntimeError(f"{policy}: generator is on {generator.device} but the batch is on {device}; "
                           f"create it with torch.Generator(device={str(device)!r})")
    return generator


def batch_field(policy: str, batch: VLBatch, name: str, shape: tuple | None = None,
                dtype: torch.dtype | None = None, floating: bool = False) -> torch.Tensor:
    """``batch.<name>``, required by ``policy``, with its shape/dtype/device checked."""
    if not isinstance(batch, VLBatch):
        raise TypeError(f"{policy}: expected a VLBatch, got {type(batch).__name__}")
    value = getattr(batch, name)
    if value is None:
        raise ValueError(f"{policy}: batch.{name} is required but missing")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{policy}: batch.{name} must be a tensor, got {type(value).__name__}")
    if shape is not None and (value.dim() != len(shape) or any(s is not None and v != s
                                                               for v, s in zip(value.shape, shape))):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{policy}: batch.{name} must have shape {want}, got {list(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{policy}: batch.{name} must be {dtype}, got {value.dtype}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{policy}: batch.{name} must be floating point, got {value.dtype}")
    if value.device != batch.input_ids.device:
        raise RuntimeError(f"{policy}: batch.{name} is on {value.device} but batch.input_ids is on "
                           f"{batch.input_ids.device}; move the whole batch with batch.to(device)")
    return value


def region_valid(policy: str, batch: VLBatch) -> torch.Tensor:
    """[B, R] bool regions that may be masked: ``batch.image_regions`` (region_valid minus text-only
    rows), once the fields it reads are checked."""
    boxes_or_features = batch.region_features if batch.region_features is not None else batch.region_boxes
    if boxes_or_features is None:
        raise ValueError(f"{policy}: the batch has no regions (batch.region_features and region_boxes are None)")
    b, r = batch.batch_size, boxes_or_features.shape[1]
    batch_field(policy, batch, "region_valid", (b, r), torch.bool)
    if batch.text_only is not None:
        batch_field(policy, batch, "text_only", (b,), torch.bool)
    return batch.image_regions


def region_labels(policy: str, batch: VLBatch, valid: torch.Tensor) -> torch.Tensor:
    """[B, R] int64 detector classes (IGNORE_INDEX where unknown)."""
    labels = batch_field(policy, batch, "region_labels", tuple(valid.shape), torch.int64)
    return labels
