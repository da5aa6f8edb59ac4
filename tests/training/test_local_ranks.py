"""train.processes: the ranks `vlengine pretrain` starts itself (vlengine/training/local_ranks.py)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from train_launch import ROOT, command_env
from vlengine.training.local_ranks import _wait, rank_environments, under_launcher


def test_rank_environments_are_torchruns():
    envs = rank_environments(3, 12345, {"PATH": "/bin"})
    assert [e["RANK"] for e in envs] == ["0", "1", "2"] == [e["LOCAL_RANK"] for e in envs]
    for env in envs:
        assert env["WORLD_SIZE"] == env["LOCAL_WORLD_SIZE"] == "3"
        assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "12345" and env["PATH"] == "/bin"
        assert under_launcher(env)
    assert not under_launcher({"PATH": "/bin"})


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_failing_rank_stops_the_others_and_gives_its_code():
    """The rank left waiting in a collective for the failed one would hang until gloo's timeout."""
    waiting = _child("import time; time.sleep(120)")
    failing = _child("import sys, time; time.sleep(0.5); sys.exit(3)")
    start = time.time()
    assert _wait([waiting, failing]) == 3
    assert waiting.poll() == -signal.SIGTERM
    assert time.time() - start < 30


def test_all_ranks_succeeding_is_success():
    assert _wait([_child("pass"), _child("import time; time.sleep(0.3)")]) == 0


def test_a_rank_killed_by_a_signal_reads_as_a_shell_would():
    killed = _child("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert _wait([killed]) == 128 + signal.SIGKILL


def test_processes_below_one_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vlengine.cli", "pretrain", "--set", "train.processes=0",
                           "--print-config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "train.processes must be >= 1" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("setting", ["train.processes=2", "train.lr_mult={backbone.: 0.1}"])
def test_fine_tuning_refuses_the_pretraining_only_settings(setting):
    """vlengine finetune would otherwise ignore them silently."""
    proc = subprocess.run([sys.executable, "-m", "vlengine.cli", "finetune", "--task", "vqa", "--set", setting,
                           "--print-config"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "are pretraining settings" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("target", ["command", "group"])
def test_sigint_stops_both_ranks_and_says_how_to_resume(tmp_path, target):
    """SIGINT to the command alone is passed on to the ranks it started; to the whole group (Ctrl-C at a
    terminal), every rank stops once, without a second SIGINT inside its handler."""
    from vlengine.data import build_embedded_corpus

    corpus = build_embedded_corpus(str(tmp_path / "c"), seed=3, num_train=48, num_heldout=24, num_text_documents=4)
    cmd = [sys.executable, "-m", "vlengine.cli", "pretrain", "--output-dir", str(tmp_path / "run")]
    for item in (f"data.corpus={corpus}", "train.processes=2", "train.total_steps=100000", "train.log_every=1",
                 "train.progress=false", "model.num_layers=1", "model.hidden_size=32", "model.num_heads=2",
                 "model.intermediate_size=64", "deepspeed.train_micro_batch_size_per_gpu=4",
                 "data.text_batch_size=2"):
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=command_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[train] step"):
                break
        assert any("2 rank(s)" in line for line in seen), "".join(seen)
        if target == "command":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
