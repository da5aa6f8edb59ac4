"""Gather the rows a loss is computed on, and the empty-selection loss that keeps every parameter in the graph."""

from __future__ import annotations

import torch

from vlengine.batch import IGNORE_INDEX
from vlengine.ops._checks import value_checks_enabled


def labelled_rows(hidden: torch.Tensor, labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden rows [M, H], labels [M]) where ``labels`` != IGNORE_INDEX; ``hidden`` is [B, n, H], labels [B, n]."""
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(f"{name} must have shape {list(hidden.shape[:-1])}, got {list(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {labels.dtype}")
    keep = labels != IGNORE_INDEX
    return hidden[keep], labels[keep]


def check_class_range(labels: torch.Tensor, num_classes: int, name: str) -> None:
    """Labels in [0, num_classes) (skipped with ``vlengine.ops.set_value_checks(False)``: it syncs the GPU)."""
    if value_checks_enabled() and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes}) or {IGNORE_INDEX}, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")


def zero_loss(*tensors: torch.Tensor) -> torch.Tensor:
    """A 0 that depends on ``tensors``: a batch with nothing to predict still backpropagates (zeros) through
    the head, so data-parallel gradient reduction sees every parameter on every rank."""
    return sum(t.sum() for t in tensors) * 0.0
