"""Which pretraining task a step runs, drawn by weight, identical on every rank.

Every rank must run the same task in the same step (ZeRO reduces gradients of
the same parameters, and heads that a task does not use would otherwise leave
ranks waiting on each other). The draw is a pure function of (seed, step), so
ranks agree without communicating and a resumed run draws the same sequence.
"""

from __future__ import annotations

import torch


class TaskMixer:
    """Weighted choice of a task name per optimizer step.

    Args:
        weights: task name -> non-negative weight (at least one positive).
        seed: base seed shared by all ranks.
    """

    def __init__(self, weights: dict[str, float], seed: int = 0):
        if not weights:
            raise ValueError("task weights must name at least one task")
        for name, weight in weights.items():
            if not isinstance(weight, (int, float)) or weight < 0 or weight != weight:
                raise ValueError(f"task weight for {name!r} must be a non-negative number, got {weight!r}")
        if sum(weights.values()) <= 0:
            raise ValueError(f"task weights must not all be zero: {weights}")
        self.names = list(weights)
        self.weights = torch.tensor([float(weights[n]) for n in self.names], dtype=torch.float64)
        self.seed = int(seed)

    def task_for_step(self, step: int) -> str:
        """The task of optimizer step `step`; the same for every rank and every resume."""
        if len(self.names) == 1:
            return self.names[0]
        # A fresh generator per step: no state to carry, any step can be asked in any order.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        index = torch.multinomial(self.weights, 1, generator=generator).item()
        return self.names[index]

    def state_dict(self) -> dict:
        return {"names": list(self.names), "weights": self.weights.tolist(), "seed": self.seed}

    def check_state(self, state: dict) -> None:
        """Refuse to resume with a different mixture: the step -> task sequence would silently change."""
        if state != self.state_dict():
            raise ValueError(f"checkpoint was trained with task mixture {state}, config asks for {self.state_dict()}")


class StagedTaskMixer(TaskMixer):
    """A TaskMixer whose weights change at given steps (InterBERT: MLM + MOM first, then MSM + MRM + ITM).

    Args:
        stages: [(first_step, {task: weight}), ...]; the first stage must start at step 0.
    """

    def __init__(self, stages: list[tuple[int, dict[str, float]]], seed: int = 0):
        if not stages or stages[0][0] != 0:
            raise ValueError(f"stages must start at step 0, got {[s for s, _ in stages]}")
        starts = [int(s) for s, _ in stages]
        if starts != sorted(set(starts)):
            raise ValueError(f"stage start steps must be strictly increasing, got {starts}")
        self.stages = [(int(start), TaskMixer(weights, seed)) for start, weights in stages]
        self.seed = int(seed)
        self.names = sorted({n for _, mixer in self.stages for n in mixer.names})

    def task_for_step(self, step: int) -> str:
        mixer = [m for start, m in self.stages if start <= step][-1]
        return mixer.task_for_step(step)

    def state_dict(self) -> dict:
        return {"stages": [[start, m.state_dict()] for start, m in self.stages], "seed": self.seed}
