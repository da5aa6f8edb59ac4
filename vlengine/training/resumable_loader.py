"""An endless, rank-sharded batch stream whose position can be saved and restored.

The order of an epoch is a permutation drawn from (seed, epoch); rank r takes
every world_size-th element of it, so the shards are disjoint and equally long.
The saved position is the number of batches this rank has *consumed* (not
prefetched by workers), so a resumed run yields exactly the batches the
uninterrupted run would have.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader


class ResumableLoader:
    """Batches from a map-style dataset forever, epoch after epoch.

    Args:
        dataset: anything with __len__ and __getitem__.
        batch_size: samples per batch on this rank.
        collate_fn: list of samples -> batch.
        seed: shared by all ranks; fixes the order of every epoch.
        rank, world_size: this rank's shard.
        shuffle: permute each epoch (False keeps the dataset order, for evaluation).
        num_workers: DataLoader worker processes (0 loads in the calling process).
    """

    def __init__(self, dataset: Sequence, batch_size: int, collate_fn: Callable, seed: int = 0,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True, num_workers: int = 0):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        per_rank = len(dataset) // world_size
        if per_rank < batch_size:
            raise ValueError(f"dataset of {len(dataset)} samples cannot fill one batch of {batch_size} "
                             f"on each of {world_size} ranks")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.batches_per_epoch = per_rank // batch_size  # drop the ragged tail: every batch is full
        self.epoch = 0
        self.position = 0  # batches consumed in the current epoch
        self._iterator: Iterator | None = None

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch)).tolist()
        else:
            order = list(range(n))
        shard = order[self.rank::self.world_size][: self.batches_per_epoch * self.batch_size]
        return [shard[i:i + self.batch_size] for i in range(0, len(shard), self.batch_size)]

    def _start(self) -> None:
        remaining = self._epoch_batches(self.epoch)[self.position:]
        # A private generator: otherwise DataLoader draws its worker base seed from the global torch
        # RNG each time an iterator starts, and a resumed run (which starts one mid-epoch) would
        # shift every later dropout mask.
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch + 1)
        self._iterator = iter(DataLoader(self.dataset, batch_sampler=remaining, collate_fn=self.collate_fn,
                                         num_workers=self.num_workers, generator=generator))

    def __iter__(self) -> "ResumableLoader":
        return self

    def __next__(self):
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._iterator = None
        if self._iterator is None:
            self._start()
        batch = next(self._iterator)
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position,
                "rank": self.rank, "world_size": self.world_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; the sharding must match the one it was saved with."""
        for key in ("seed", "world_size", "batch_size"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"loader state was saved with {key}={state.get(key)!r}, "
                                 f"this run has {key}={getattr(self, key)!r}")
        if not 0 <= state["position"] <= self.batches_per_epoch:
            raise ValueError(f"loader position {state['position']} is outside an epoch of "
                             f"{self.batches_per_epoch} batches")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._iterator = None
