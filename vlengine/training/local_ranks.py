"""`train.processes`: the ranks a `vlengine pretrain` command starts on this machine by itself.

Without a launcher a command is a process group of one. On a CPU, one process with one
thread per core loses much of the second core to OpenMP spin-waiting on a small model
(threads.py), while data parallelism over processes of one thread each keeps every core
busy: the gradients of a small model cross gloo in milliseconds. So a config may ask for
N processes; the command then starts N copies of itself with the environment torchrun
gives its workers (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
and waits for them. DeepSpeed splits the configured total batch over them
(`train_batch_size` = micro batch x accumulation x ranks), so the run trains the same
batch as with one process.

Under a launcher (RANK set: `deepspeed`, `torchrun`, or a copy started here) the setting
is ignored: the launcher decides how many ranks there are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10.0             # the other ranks' time to stop after one failed, before they are killed
FORWARD_AFTER_SECONDS = 3.0      # after Ctrl-C: the ranks' time to stop on their own before it is passed on
INTERRUPT_GRACE_SECONDS = 60.0   # then their time to stop and print the resume hint, before they are killed


def under_launcher(env=None) -> bool:
    return "RANK" in (os.environ if env is None else env)


def rank_environments(processes: int, port: int, base: dict) -> list[dict]:
    """The environment of each local rank (torchrun's names, so threads.py and DeepSpeed read them)."""
    common = {**base, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(processes),
              "LOCAL_WORLD_SIZE": str(processes)}
    return [{**common, "RANK": str(rank), "LOCAL_RANK": str(rank)} for rank in range(processes)]


def run_local_ranks(processes: int, argv: list[str], command: str = "pretrain") -> int:
    """Start ``processes`` copies of ``vlengine <command> <argv>`` and wait; the first failing rank's
    exit code (the others are stopped then: they would wait for it in a collective), else 0."""
    from .engine import free_port

    envs = rank_environments(processes, free_port(), dict(os.environ))
    children = [subprocess.Popen([sys.executable, "-m", "vlengine.cli", command, *argv], env=env) for env in envs]
    try:
        return _wait(children)
    except KeyboardInterrupt:
        # Ctrl-C at a terminal reaches the whole foreground group: every rank stops on its own (rank 0
        # says how to resume), and a second SIGINT could land in that handler. So the ranks get a
        # moment first; a SIGINT sent to this process alone is then passed on.
        _wait_for(children, FORWARD_AFTER_SECONDS)
        _stop(children, signal.SIGINT, grace=INTERRUPT_GRACE_SECONDS)
        return 130


def _wait(children: list[subprocess.Popen]) -> int:
    while True:
        codes = [child.poll() for child in children]
        failed = [code for code in codes if code not in (None, 0)]
        if failed:
            _stop(children, signal.SIGTERM, grace=GRACE_SECONDS)
            return failed[0] if failed[0] > 0 else 128 - failed[0]   # killed by signal N: 128 + N, as a shell says
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def _wait_for(children: list[subprocess.Popen], seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and any(child.poll() is None for child in children):
        time.sleep(0.1)


def _stop(children: list[subprocess.Popen], sig: int, grace: float) -> None:
    """Send ``sig`` to the ranks still running; kill those that have not stopped ``grace`` seconds later."""
    deadline = time.time() + grace
    for child in children:
        if child.poll() is None:
            child.send_signal(sig)
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
