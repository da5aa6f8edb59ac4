"""Start tests/training/tiny.py as 1 or N ranks (gloo on the CPU) and read its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vlengine.training.engine import free_port  # noqa: F401 (the tests' launches take the engine's)

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(TINY)))

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def command_env(**extra: str) -> dict:
    """This environment without a launcher's variables (the command starts its own ranks), DeepSpeed on
    the CPU, importing the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(DS_ACCELERATOR="cpu", PYTHONPATH=ROOT, **extra)
    return env


def ds_config(stage: int, micro_batch: int, accumulation: int = 1, world: int = 1, **extra) -> dict:
    config = {"train_micro_batch_size_per_gpu": micro_batch, "gradient_accumulation_steps": accumulation,
              "train_batch_size": micro_batch * accumulation * world,
              "zero_optimization": {"stage": stage}, "gradient_clipping": 1.0}
    config.update(extra)
    return config


def run_tiny(tmp_path, *, world: int, ds: dict, train: dict, tasks: dict | None = None, micro_batch: int = 8,
             dropout: float = 0.0, name: str = "result", timeout: int = 240,
             accelerator: str = "cpu"):
    """Run the tiny objective; return (result dict or None, [returncodes], combined output)."""
    out = os.path.join(str(tmp_path), f"{name}.json")
    port = str(free_port())
    cmd = [sys.executable, TINY, "--out", out, "--ds-config", json.dumps(ds), "--train", json.dumps(train),
           "--tasks", json.dumps(tasks or {"cls": 1.0}), "--micro-batch", str(micro_batch),
           "--dropout", str(dropout)]
    procs = []
    for rank in range(world):
        env = dict(os.environ, DS_ACCELERATOR=accelerator, RANK=str(rank), LOCAL_RANK=str(rank),
                   WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1",
                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs, codes = [], []
    for proc in procs:
        try:
            text, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        outputs.append(text)
        codes.append(proc.returncode)
    result = None
    if os.path.exists(out):
        with open(out) as f:
            result = json.load(f)
    return result, codes, "\n".join(outputs)
