"""rank_zero_first (vlengine/training/run.py): the other ranks wait for rank 0's detector stage longer
than the process group's timeout, which bounds one collective (DeepSpeed's default: 10 minutes)."""

import subprocess
import sys

from train_launch import command_env
from vlengine.training.engine import free_port

# Two gloo ranks whose process group times out after 2 s; rank 0 "builds" for 4 s, then both
# meet in a collective of the ordinary group, which must still work.
_RANK = """
import datetime, sys, time
import torch.distributed as dist
from vlengine.training.run import rank_zero_first
rank, port, wait = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                        timeout=datetime.timedelta(seconds=2))
kwargs = {} if wait == "default" else {"timeout": datetime.timedelta(seconds=float(wait))}
rank_zero_first(lambda: time.sleep(4), rank, **kwargs)
dist.barrier()
dist.destroy_process_group()
"""


def _two_ranks(wait: str) -> tuple[list[int], list[str]]:
    port = str(free_port())
    ranks = [subprocess.Popen([sys.executable, "-c", _RANK, str(rank), port, wait], env=command_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    codes, errors = [], []
    for proc in ranks:
        try:
            errors.append(proc.communicate(timeout=120)[1])
        finally:
            proc.kill()
        codes.append(proc.returncode)
    return codes, errors


def test_the_other_ranks_outwait_the_process_groups_timeout():
    codes, errors = _two_ranks("default")
    assert codes == [0, 0], errors


def test_a_wait_shorter_than_the_build_fails():
    """The check above can fail: with its own timeout under the build's 4 s, rank 1 gives up."""
    codes, errors = _two_ranks("1")
    assert codes[1] != 0 and "Timed out" in errors[1], errors[1][-2000:]
