"""Per-rank sharding and batch planning, deterministic from (seed, epoch).

A *plan* is the list of batches one rank sees in one epoch, each batch a list of
dataset indices. It is a pure function of (seed, epoch, rank, world_size, the
lengths), so resuming mid-epoch is just "rebuild the plan, skip the batches
already consumed" (:class:`~vlengine.data.loading.stream.ResumableStream`).

Sharding: one permutation of all indices per epoch (the same on every rank),
rank r takes positions r, r + W, r + 2W, ...: ranks are disjoint and together
cover every index exactly once. Ranks may differ by one sample per epoch; with
``drop_last`` every rank keeps exactly floor(N / W) samples, so all ranks have
the same number of full batches and cross epoch boundaries at the same step.
"""

from __future__ import annotations

import numpy as np


def epoch_permutation(num_samples: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch), 0x5A4D]).permutation(num_samples).astype(np.int64)


def shard_indices(num_samples: int, rank: int, world_size: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """This rank's indices for ``epoch`` (disjoint across ranks, complete together)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    return epoch_permutation(num_samples, seed, epoch, shuffle)[rank::world_size]


def fixed_size_batches(indices: np.ndarray, batch_size: int, drop_last: bool = False) -> list[np.ndarray]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def token_budget_batches(indices: np.ndarray, lengths: np.ndarray, max_tokens: int, seed: int, epoch: int,
                         rank: int = 0, bucket_batches: int = 64, max_batch_size: int | None = None) -> list[np.ndarray]:
    """Batches whose padded size (rows x longest row) stays within ``max_tokens``.

    Length buckets (UNITER's TokenBucketSampler): the shuffled indices are cut
    into buckets of about ``bucket_batches`` batches, sorted by length inside a
    bucket so rows of a batch have similar lengths (little padding), then the
    batch order is shuffled so lengths do not trend through the epoch.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    lengths = np.asarray(lengths)
    if len(indices) == 0:
        return []
    longest = int(lengths[indices].max())
    if longest > max_tokens:
        raise ValueError(f"max_tokens={max_tokens} is smaller than the longest sample ({longest} tokens)")
    mean_rows = max(1, max_tokens // max(1, int(lengths[indices].mean())))
    bucket = max(1, mean_rows * bucket_batches)
    batches: list[np.ndarray] = []
    for b in range(0, len(indices), bucket):
        chunk = indices[b:b + bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        cur: list[int] = []
        cur_max = 0
        for idx in chunk:
            L = int(lengths[idx])
            new_max = max(cur_max, L)
            if cur and (new_max * (len(cur) + 1) > max_tokens or (max_batch_size and len(cur) >= max_batch_size)):
                batches.append(np.asarray(cur, dtype=np.int64))
                cur, new_max = [], L
            cur.append(int(idx))
            cur_max = new_max
        if cur:
            batches.append(np.asarray(cur, dtype=np.int64))
    order = np.random.default_rng([int(seed), int(epoch), int(rank), 0xB0C]).permutation(len(batches))
    return [batches[i] for i in order]


class BatchPlan:
    """Batches of one stream for a given rank, epoch after epoch.

    Args:
        num_samples: size of the dataset.
        batch_size / max_tokens: fixed rows per batch, or a token budget
            (then ``lengths`` is required; ``batch_size`` caps the rows).
        rank / world_size: this process's shard.
        seed, shuffle, drop_last: as usual; all randomness comes from (seed, epoch).
    """

    def __init__(self, num_samples: int, batch_size: int | None = None, max_tokens: int | None = None,
                 lengths: np.ndarray | None = None, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, bucket_batches: int = 64):
        if batch_size is None and max_tokens is None:
            raise ValueError("give batch_size or max_tokens")
        if max_tokens is not None and lengths is None:
            raise ValueError("max_tokens needs the sample lengths")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_samples < world_size:
            raise ValueError(f"{num_samples} samples cannot be sharded over {world_size} ranks")
        self.num_samples, self.batch_size, self.max_tokens = num_samples, batch_size, max_tokens
        self.lengths = lengths
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.drop_last, self.bucket_batches = shuffle, drop_last, bucket_batches
        shard_indices(num_samples, rank, world_size, seed, 0)  # validates rank/world_size
        if drop_last and max_tokens is None and num_samples // world_size < batch_size:
            raise ValueError(f"dataset of {num_samples} samples cannot fill one batch of {batch_size} "
                             f"on each of {world_size} ranks")
        self._cache: tuple[int, list] | None = None

    def identity(self) -> dict:
        """What a saved position is only valid for (a resumed run must plan the same batches)."""
        return {"num_samples": self.num_samples, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size, "batch_size": self.batch_size, "max_tokens": self.max_tokens,
                "shuffle": self.shuffle, "drop_last": self.drop_last}

    def batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch`` as lists of dataset indices."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        idx = shard_indices(self.num_samples, self.rank, self.world_size, self.seed, epoch, self.shuffle)
        if self.drop_last:
            idx = idx[:self.num_samples // self.world_size]  # equal shards: ranks stay in step epoch by epoch
        if self.max_tokens is not None:
            raw = token_budget_batches(idx, self.lengths, self.max_tokens, self.seed, epoch, self.rank,
                                       self.bucket_batches, self.batch_size)
        else:
            raw = fixed_size_batches(idx, self.batch_size, self.drop_last)
        plan = [[int(i) for i in b] for b in raw]
        if not plan:
            raise ValueError(f"rank {self.rank}: no batches in epoch {epoch} (dataset too small for the batch size?)")
        self._cache = (epoch, plan)
        return plan

