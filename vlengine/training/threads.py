"""How many intra-op threads a rank uses: ranks x threads never exceed the machine's cores.

Two ranks on one machine, each with PyTorch's default of one thread per core,
ask for twice the cores: every parallel region (a matmul, a fused op's
at::parallel_for) then waits for a thread the other rank has descheduled, and a
step can take many times its quiet time. So unless the config (`train.threads`)
or the environment (`OMP_NUM_THREADS`, which PyTorch follows) says otherwise, a
rank takes its share of the cores it may run on: cores // local ranks. The local
rank count comes from the launcher: `LOCAL_WORLD_SIZE` (torchrun) or
`LOCAL_SIZE` (DeepSpeed's launcher); a plain process is one rank. Loader worker
processes run one thread each (PyTorch's DataLoader sets that in every worker).
"""

from __future__ import annotations

import os
from typing import Mapping


def local_ranks(env: Mapping[str, str]) -> int:
    """Ranks on this machine, as the launcher announced them (1 without a launcher)."""
    for name in ("LOCAL_WORLD_SIZE", "LOCAL_SIZE"):
        value = env.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def available_cores() -> int:
    """Cores this process may run on (its affinity mask: a container's or numactl's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def rank_threads(configured: int | None, env: Mapping[str, str] | None = None, cores: int | None = None) -> int | None:
    """The thread count to set for this rank, or None to leave PyTorch's (OMP_NUM_THREADS given)."""
    if configured:
        return configured
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS"):
        return None
    cores = available_cores() if cores is None else cores
    return max(1, cores // local_ranks(env))


def use_rank_threads(configured: int | None) -> None:
    """Set this rank's intra-op threads (``rank_threads``) before it builds or trains anything: a
    stage that runs before the loop (the tiny front-end's detector stage) must not start with one
    thread per core in every rank either."""
    import torch

    threads = rank_threads(configured)
    if threads:
        torch.set_num_threads(threads)
