"""Resume through the production path: the real `python -m vlengine.cli pretrain` command,
killed by SIGKILL (after a checkpoint, and in the middle of writing one), then rerun unchanged,
ends with exactly the uninterrupted run's evaluation, per-step losses and exported weights.

The run is the CPU smoke recipe (VL-BERT: masking, ITM negatives, text-only
batches mixed in, dropout) shrunk to a 2-layer, 32-wide model on a 24-image
corpus, so each command takes seconds, with gradient accumulation 2 (the data
position counts micro-batches, not steps). The comparison is bit-exact, so every
source of randomness (the data stream's position and worker seeds, the masking
generators, the torch/numpy/python RNG states, the task draw) must resume exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from vlengine.training.plots import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILL_ON_SAVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kill_on_save.py")
TOTAL_STEPS = 6
SETTINGS = [f"train.total_steps={TOTAL_STEPS}", "train.warmup_steps=1", "train.save_every=2", "train.log_every=1",
            "train.keep_last=2", "eval.captions=16", "eval.retrieval_images=4",
            "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64"]
SPEED_METRICS = {"samples_per_s", "tokens_per_s", "mfu"}  # wall-clock dependent: not part of the comparison


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    """The shipped CPU smoke recipe, with its DeepSpeed config inline and 2 micro-batches of 4 per step."""
    import yaml
    smoke = os.path.join(ROOT, "train", "configs", "cpu_gloo_smoke.yaml")
    with open(smoke) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(os.path.dirname(smoke), values["deepspeed"])) as f:
        ds = json.load(f)
    ds.update(train_micro_batch_size_per_gpu=4, gradient_accumulation_steps=2)
    values["deepspeed"] = ds
    path = tmp_path_factory.mktemp("config") / "smoke_accumulate.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=3, num_train=24,
                                 num_heldout=12, num_text_documents=2)


def _command(config: str, corpus: str, out: str) -> list[str]:
    cmd = ["-m", "vlengine.cli", "pretrain", "--config", config, "--output-dir", out, "--set", f"data.corpus={corpus}"]
    for setting in SETTINGS:
        cmd += ["--set", setting]
    return cmd


def _env() -> dict:
    # A child starts its own one-rank process group, not one a test process may have set up.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _start(args: list[str], log: str) -> subprocess.Popen:
    with open(log, "w") as f:  # a file, not a pipe: an unread pipe would block the run when full
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: str, timeout: float = 300) -> str:
    proc.wait(timeout=timeout)
    with open(log) as f:
        return f.read()


def _run_to_completion(command: list[str], out: str, log: str) -> dict:
    output = _finish(_start(command, log), log)
    assert "Traceback" not in output and os.path.isfile(os.path.join(out, "eval.json")), output[-4000:]
    return _results(out, output)


def _train_lines(output: str) -> dict[int, dict[str, str]]:
    """Step -> the logged training metrics (as printed), without the wall-clock ones."""
    lines = {}
    for line in output.splitlines():
        if line.startswith("[train] step "):
            words = line.split()
            values = dict(word.split("=", 1) for word in words[3:])
            lines[int(words[2])] = {k: v for k, v in values.items() if k not in SPEED_METRICS}
    return lines


def _results(out: str, output: str) -> dict:
    from safetensors.torch import load_file
    with open(os.path.join(out, "eval.json")) as f:
        summary = json.load(f)
    return {"eval": summary["eval"], "final_step": summary["final_step"], "train": _train_lines(output),
            "weights": load_file(os.path.join(out, "model_fp32.safetensors")), "metrics": read_metrics(out),
            "plots": sorted(os.listdir(os.path.join(out, "plots")))}


def _latest(out: str) -> str | None:
    try:
        with open(os.path.join(out, "checkpoints", "latest")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _assert_same_run(resumed: dict, reference: dict, resumed_from: int) -> None:
    assert resumed["final_step"] == reference["final_step"] == TOTAL_STEPS
    assert min(resumed["train"]) == resumed_from + 1                      # it resumed, it did not start over
    for step in range(resumed_from + 1, TOTAL_STEPS + 1):                 # bit-exact as printed, step by step
        assert resumed["train"][step] == reference["train"][step], step
    assert resumed["eval"] == reference["eval"]                           # exactly, not approximately
    # metrics.jsonl holds the killed run's lines and the resumed run's: the last line per step wins
    assert resumed["metrics"]["train/loss"] == reference["metrics"]["train/loss"]
    assert [s for s, _ in resumed["metrics"]["train/loss"]] == list(range(1, TOTAL_STEPS + 1))
    assert "train_loss.png" in resumed["plots"] and resumed["plots"] == reference["plots"]
    assert resumed["weights"].keys() == reference["weights"].keys()
    for name, tensor in reference["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name


@pytest.fixture(scope="module")
def uninterrupted(config, corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    reference = _run_to_completion(_command(config, corpus, str(tmp / "run")), str(tmp / "run"), str(tmp / "log.txt"))
    assert sorted(reference["train"]) == list(range(1, TOTAL_STEPS + 1))
    assert any(t.abs().sum() > 0 for t in reference["weights"].values())
    return reference


def test_sigkill_after_a_checkpoint_then_the_same_command_reproduces_the_run(config, corpus, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    # With 2 DataLoader workers here (the reference loads in-process): items are functions of
    # (seed, epoch, index) and worker seeds of (seed, epoch), so the worker count changes nothing.
    command = _command(config, corpus, out) + ["--set", "data.num_workers=2"]
    proc = _start(command, str(tmp_path / "killed.txt"))
    deadline = time.monotonic() + 300
    while _latest(out) is None:                       # the first complete checkpoint
        assert proc.poll() is None, _finish(proc, str(tmp_path / "killed.txt"))[-4000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    killed_output = _finish(proc, str(tmp_path / "killed.txt"))
    assert proc.returncode == -signal.SIGKILL, killed_output[-4000:]
    assert not os.path.exists(os.path.join(out, "eval.json")), "the run finished before the kill"
    killed_at = int(_latest(out).removeprefix("step"))
    assert 0 < killed_at < TOTAL_STEPS

    resumed = _run_to_completion(command, out, str(tmp_path / "resumed.txt"))   # the same command
    _assert_same_run(resumed, uninterrupted, killed_at)


def test_sigkill_in_the_middle_of_a_save_leaves_the_previous_checkpoint(config, corpus, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    command = _command(config, corpus, out)
    # The second checkpoint (step 4) dies after writing half of its first file.
    log = str(tmp_path / "killed.txt")
    proc = _start([KILL_ON_SAVE, "2", *command[2:]], log)
    output = _finish(proc, log)
    assert proc.returncode == -signal.SIGKILL, output[-4000:]
    ckpt = os.path.join(out, "checkpoints")
    assert _latest(out) == "step000000002"
    assert any(name.startswith(".partial-") for name in os.listdir(ckpt)), "the kill did not happen mid-save"

    resumed = _run_to_completion(command, out, str(tmp_path / "resumed.txt"))
    _assert_same_run(resumed, uninterrupted, 2)
    assert not any(name.startswith(".partial-") for name in os.listdir(ckpt))
