"""Typed settings of the training loop (the part of a pretraining config that is not model or data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainSettings:
    total_steps: int = 1000          # optimizer steps of the whole schedule
    warmup_steps: int = 100          # linear warm-up, then linear decay to 0 at total_steps
    lr: float = 1e-4                 # peak learning rate
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-6
    seed: int = 42
    max_steps: int | None = None     # stop early (the schedule still spans total_steps), e.g. to test resume
    log_every: int = 10              # console + TensorBoard line every N steps
    save_every: int = 0              # checkpoint every N steps (0: only at the end, if output_dir is set)
    keep_last: int = 2               # complete checkpoints kept on disk
    eval_every: int = 0              # evaluation every N steps (0: only at the end)
    output_dir: str | None = None    # checkpoints/, tensorboard/, final.safetensors
    resume: bool = True              # continue from output_dir/checkpoints/latest when present
    eval_if_finished: bool = False   # resuming a run that already reached its last step: evaluate it again
    export_safetensors: bool = True  # write output_dir/model_fp32.safetensors at the end
    peak_tflops: float | None = None # per-rank peak for MFU (default: GPU spec table / measured CPU matmul)
    progress: bool | str = "auto"    # tqdm bar: True, False, or "auto" (only on a terminal)
    tensorboard: bool = True
    threads: int | None = None       # torch intra-op threads per rank (None: OMP_NUM_THREADS if set, else
                                     # cores // ranks on this machine, threads.py). On a small, shared CPU
                                     # 1 avoids OpenMP spin-waiting when cores are oversubscribed
    lr_mult: dict[str, float] | None = None  # VL-BERT's TRAIN.LR_MULT: {name part: multiplier}, e.g.
                                     # {"model.visual.": 0.1} trains the visual front-end at lr x 0.1
    processes: int = 1               # ranks the command starts on this machine when no launcher started it
                                     # (CPU data parallel, local_ranks.py); under a launcher it decides

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainSettings":
        """Build from a config mapping; unknown keys and wrong types are an error (a typo must not be ignored)."""
        from vlengine._config import ConfigError, from_mapping

        settings = from_mapping(cls, values, source, "train")
        try:
            settings.validate()
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
        return settings

    def validate(self) -> None:
        if self.total_steps <= 0:
            raise ValueError(f"train.total_steps must be positive, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"train.warmup_steps must be in [0, total_steps], got {self.warmup_steps}")
        if self.max_steps is not None and not 0 < self.max_steps <= self.total_steps:
            raise ValueError(f"train.max_steps must be in (0, total_steps], got {self.max_steps}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        for key, mult in (self.lr_mult or {}).items():
            if not isinstance(mult, (int, float)) or isinstance(mult, bool) or not mult > 0:
                raise ValueError(f"train.lr_mult: the multiplier of {key!r} must be a positive number, got {mult!r}")
        if self.processes < 1:
            raise ValueError(f"train.processes must be >= 1, got {self.processes}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"train.threads must be >= 1, got {self.threads}")
        for name in ("log_every", "save_every", "eval_every", "keep_last"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")

