"""Learning-rate schedule: linear warm-up, then linear decay to zero.

This is the schedule of BERT and of every paper the engine reproduces (VL-BERT:
16k warm-up steps; InterBERT: 10k). Counted in optimizer steps, not micro-batches.
"""

from __future__ import annotations

import torch


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    if step < warmup_steps:
        # (step + 1) so the very first update already moves the weights.
        return (step + 1) / warmup_steps
    remaining = total_steps - warmup_steps
    if remaining == 0:
        return 1.0
    return max(0.0, (total_steps - step) / remaining)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                       total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `warmup_linear_decay`; DeepSpeed steps it once per optimizer step
    and saves its state with the checkpoint."""
    warmup_linear_decay(0, warmup_steps, total_steps)  # validate eagerly, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear_decay(step, warmup_steps, total_steps))
