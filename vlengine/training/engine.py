"""Start torch.distributed the DeepSpeed way and wrap a module in a DeepSpeed engine.

Runs under the `deepspeed` launcher (env RANK/WORLD_SIZE/... set by it), under
torchrun, or as one plain process (then a one-rank group is created here, so
the same code path, ZeRO included, is exercised on a laptop). On a machine
without a GPU set DS_ACCELERATOR=cpu: DeepSpeed then uses gloo.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import socket
import sys

import torch

from .schedule import build_lr_scheduler

_NO_DECAY_SUFFIXES = ("bias",)
_group_started = False  # set once this process has joined a process group (see exit_process)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> tuple[int, int]:
    """Initialise the process group once; return (rank, world_size)."""
    import deepspeed
    import torch.distributed as dist

    global _group_started
    if not dist.is_initialized():
        if "RANK" not in os.environ:  # plain `python` / `vlengine pretrain`: a group of one
            os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
        deepspeed.init_distributed(verbose=False)
    _group_started = True
    return dist.get_rank(), dist.get_world_size()


def shutdown_distributed() -> None:
    """Leave the process group cleanly: all ranks meet, then the group is destroyed.

    A command should then end with `exit_process`: destroying the group does not stop
    every gloo thread, and those can still abort the interpreter's finalisation.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End a command that ran a process group: exit hooks and flushes, but no interpreter finalisation.

    Why not a plain `sys.exit`: gloo's worker threads destroy finished collectives on
    their own. When the last reference to a collective's tensor sits in such a work
    item, freeing it takes the GIL. If the interpreter is finalising at that moment, the
    thread is killed inside a noexcept destructor. The result is std::terminate: "terminate
    called without an active exception", SIGABRT, and exit code -6 for a run that finished
    and saved everything (pytorch/pytorch#190489; we caught it in a core dump of a 2-rank
    ZeRO-3 run on the CPU: 2 aborts in about 140 runs of tests/training/tiny.py).
    `destroy_process_group` does not help, because it only joins the threads of groups
    nothing else holds, and DeepSpeed keeps its groups. So this runs what a normal exit
    runs first (atexit hooks: logging, multiprocessing's worker cleanup), flushes the
    standard streams, and leaves with `os._exit`. Processes that never started a group
    exit normally.
    """
    if not _group_started:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not turn success into a traceback
            pass
    os._exit(code)


def load_deepspeed_config(source: dict | str) -> dict:
    """A DeepSpeed config from a dict or a JSON file; errors name the file."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    if not isinstance(source, str):
        raise TypeError(f"deepspeed config must be a dict or a path to a JSON file, got {type(source).__name__}")
    try:
        with open(source) as f:
            return json.load(f)
    except FileNotFoundError as err:
        raise ValueError(f"deepspeed config file {source!r} does not exist") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"deepspeed config file {source!r} is not valid JSON: {err}") from err


def param_groups(module: torch.nn.Module, weight_decay: float, lr: float | None = None,
                 lr_mult: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups: no weight decay on biases and normalisation weights (BERT's rule).

    ``lr_mult`` (VL-BERT's TRAIN.LR_MULT): a parameter whose name contains a key trains at
    ``lr`` x that key's multiplier (the first key that matches, in order); the schedule then
    scales every group's own rate. A key no trainable parameter matches is an error: a typo
    must not leave the rates as they were."""
    lr_mult = dict(lr_mult or {})
    if lr_mult and lr is None:
        raise ValueError("param_groups: lr_mult needs the peak lr")
    groups: dict[tuple[float, bool], list] = {}
    matched = set()
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        key = next((k for k in lr_mult if k in name), None)
        matched.add(key)
        decay = not (name.endswith(_NO_DECAY_SUFFIXES) or p.ndim == 1)
        groups.setdefault((lr_mult[key] if key is not None else 1.0, decay), []).append(p)
    unmatched = [k for k in lr_mult if k not in matched]
    if unmatched:
        from vlengine._config import ConfigError
        raise ConfigError(f"train.lr_mult: {unmatched[0]!r} is part of no trainable parameter's name")
    out = []
    # the base rate's groups first: the log line reports the first group's lr; decay before no decay
    for (mult, decay), params in sorted(groups.items(), key=lambda item: (item[0][0] != 1.0, item[0][0], not item[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if lr_mult:
            group.update(lr=lr * mult, lr_multiplier=mult)
        out.append(group)
    return out


def compute_dtype(ds_config: dict) -> torch.dtype:
    """The dtype DeepSpeed casts the module to."""
    if ds_config.get("bf16", {}).get("enabled", False):
        return torch.bfloat16
    if ds_config.get("fp16", {}).get("enabled", False):
        return torch.float16
    return torch.float32


def build_engine(module: torch.nn.Module, ds_config: dict, *, lr: float, weight_decay: float,
                 betas: tuple[float, float], eps: float, warmup_steps: int, total_steps: int,
                 groups: list[dict] | None = None):
    """deepspeed.initialize with AdamW and warm-up/linear-decay unless the DeepSpeed config names its own.

    `groups`: the optimizer's parameter groups (each may carry its own "lr", e.g. a fine-tuning head's
    multiplier; the schedule scales every group's own rate); default `param_groups(module, weight_decay)`.
    Returns the engine (its .optimizer and .lr_scheduler are DeepSpeed's wrappers).
    """
    import deepspeed

    init_distributed()
    config = copy.deepcopy(ds_config)
    optimizer = scheduler = None
    if "optimizer" not in config:
        use_fused = torch.cuda.is_available()
        optimizer = torch.optim.AdamW(groups or param_groups(module, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                                      fused=use_fused or None)
        # torch's AdamW is not on DeepSpeed's list of "tested" ZeRO optimizers, but ZeRO only
        # needs a torch.optim.Optimizer over the flat fp32 partitions, which AdamW is.
        config.setdefault("zero_allow_untested_optimizer", True)
    if "scheduler" not in config:
        if optimizer is None:
            raise ValueError("a deepspeed config with its own 'optimizer' must also name its 'scheduler'")
        scheduler = build_lr_scheduler(optimizer, warmup_steps, total_steps)
    config.setdefault("steps_per_print", 10**9)  # the Monitor reports; keep DeepSpeed's own log quiet
    engine, _, _, _ = deepspeed.initialize(model=module, optimizer=optimizer, lr_scheduler=scheduler,
                                           model_parameters=None if optimizer is not None else module.parameters(),
                                           config=config)
    return engine


def loss_scale(engine) -> float:
    """Current fp16 loss scale (1.0 when training in fp32/bf16)."""
    opt = engine.optimizer
    for attr in ("cur_scale", "loss_scale"):
        value = getattr(opt, attr, None)
        if isinstance(value, (int, float)):
            return float(value)
        if torch.is_tensor(value):
            return float(value)
    return 1.0
