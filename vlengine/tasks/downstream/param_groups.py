"""Optimizer parameter groups with a learning-rate multiplier for the task head.

UNITER, ViLT and MMF train the freshly initialised head with 10x the backbone's
learning rate. A group's ``lr`` is the base rate times its multiplier, which a
``LambdaLR`` schedule (the engine's warm-up/decay) keeps, since it scales each
group's own initial rate; ``lr_multiplier`` is stored too, for schedules that
set one rate for all groups. Biases and 1-D weights (LayerNorm) get no weight
decay (BERT's rule, as the pretraining optimizer).
"""

from __future__ import annotations

from torch import nn


def head_lr_param_groups(model: nn.Module, lr: float, head_lr_multiplier: float = 1.0, weight_decay: float = 0.01,
                         backbone_prefix: str = "backbone.") -> list[dict]:
    """Groups (backbone | head) x (decay | no decay); the head is every parameter outside ``backbone_prefix``."""
    if lr <= 0 or head_lr_multiplier <= 0:
        raise ValueError(f"lr and head_lr_multiplier must be positive, got {lr} and {head_lr_multiplier}")
    groups: dict[tuple[str, bool], list] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:     # tied weights appear once
            continue
        seen.add(id(p))
        part = "backbone" if name.startswith(backbone_prefix) else "head"
        decay = not (name.endswith("bias") or p.ndim == 1)
        groups.setdefault((part, decay), []).append(p)
    if not any(part == "head" for part, _ in groups):
        raise ValueError(f"no parameter outside {backbone_prefix!r}: the model has no head to scale")
    out = []
    for (part, decay), params in sorted(groups.items()):
        mult = head_lr_multiplier if part == "head" else 1.0
        out.append({"params": params, "lr": lr * mult, "lr_multiplier": mult,
                    "weight_decay": weight_decay if decay else 0.0, "name": f"{part}{'' if decay else '_no_decay'}"})
    return out
