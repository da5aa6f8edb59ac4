"""What every pretraining objective returns from its forward."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TaskOutput:
    """loss: the scalar the engine backpropagates (sum of the step's weighted losses).
    metrics: detached scalars to log, named `<task>_loss` and `<task>_acc` (e.g. mlm_loss, mrc_acc)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def accuracy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Fraction of labelled rows whose argmax is right (NaN when nothing is labelled: logged as missing)."""
    keep = labels != ignore_index
    if not bool(keep.any()):
        return torch.tensor(float("nan"), device=logits.device)
    return (logits.argmax(-1)[keep] == labels[keep]).float().mean().detach()
