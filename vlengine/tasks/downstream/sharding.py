"""Evaluation sharded over data-parallel ranks: every example scored exactly once.

Rank r of w takes the contiguous range [r * n // w, (r + 1) * n // w): the
ranges partition 0..n-1 (sizes differ by at most one), so no rank pads its
share with duplicates (metrics would depend on the rank count) and nothing is
dropped. Results are keyed by example id and gathered on rank 0 with
``torch.distributed.gather_object``; rank 0 checks that every id arrived once.
"""

from __future__ import annotations

import torch.distributed as dist


def shard_range(n: int, rank: int, world_size: int) -> range:
    """The examples rank ``rank`` of ``world_size`` scores."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return range(rank * n // world_size, (rank + 1) * n // world_size)


def _world(group=None) -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def gather_results(local: dict, expected_ids=None, group=None) -> dict | None:
    """Merges every rank's ``{example id: result}`` on rank 0 (other ranks get None).

    Raises on rank 0 when an id came from two ranks, or (with ``expected_ids``)
    when an expected id is missing or an unexpected one appeared.
    """
    rank, world = _world(group)
    if world == 1:
        parts = [local]
    else:
        parts = [None] * world if rank == 0 else None
        dst = 0 if group is None else dist.get_global_rank(group, 0)
        dist.gather_object(local, parts, dst=dst, group=group)
        if rank != 0:
            return None
    merged: dict = {}
    for source, part in enumerate(parts):
        for key, value in part.items():
            if key in merged:
                raise RuntimeError(f"distributed evaluation: example {key!r} was scored twice (again on rank {source})")
            merged[key] = value
    if expected_ids is not None:
        expected = set(expected_ids)
        missing = expected - merged.keys()
        extra = merged.keys() - expected
        if missing or extra:
            raise RuntimeError(f"distributed evaluation: {len(missing)} examples not scored (e.g. "
                               f"{sorted(missing, key=str)[:3]}), {len(extra)} unexpected")
    return merged
