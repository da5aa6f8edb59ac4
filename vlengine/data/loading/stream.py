"""The engine's one resumable batch stream: a map-style dataset read in the order a
:class:`~vlengine.data.loading.sampling.BatchPlan` fixes, epoch after epoch.

    stream = ResumableStream(dataset, BatchPlan(len(dataset), batch_size=8, rank=r, world_size=w, seed=s),
                             collate_fn)
    batch = next(stream)                 # an iterator: training calls next() step after step
    state = stream.state_dict()          # JSON-able: goes into the checkpoint
    stream.load_state_dict(state)        # a fresh stream continues with the very next batch

Exactness on resume rests on three rules:

- The position saved is the number of batches *handed to the caller* in the
  current epoch, not the batches DataLoader workers prefetched.
- The order is a pure function of (seed, epoch, rank, world_size): resuming
  rebuilds the epoch's plan and skips the batches already consumed.
- The DataLoader gets a private generator seeded from (seed, epoch). Without it
  the DataLoader draws its workers' base seed from the global torch RNG whenever
  an iterator starts (each epoch, and at a resume point), so a resumed run would
  shift every later dropout mask. Workers are therefore seeded from (seed,
  epoch) too. Datasets of this package take ``(epoch, index)`` keys
  (``keyed_by_epoch = True``) and derive any randomness of an item from
  (seed, epoch, index), so items do not depend on which worker loads them;
  other datasets get plain integer indices.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from .sampling import BatchPlan

_WORKER_SEED_STREAM = 0x57E4  # keeps the DataLoader's seed apart from the plan's permutation stream


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The DataLoader generator (workers' base seed) of an epoch: a function of (seed, epoch) only."""
    value = np.random.SeedSequence([int(seed), int(epoch), _WORKER_SEED_STREAM]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(value))


class ResumableStream:
    """Batches of ``dataset`` in the order ``plan`` fixes, resumable mid-epoch.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (of an int, or of
            an ``(epoch, index)`` key when the dataset sets ``keyed_by_epoch``).
        plan: which indices form each batch of this rank in each epoch.
        collate_fn: list of items -> batch.
        epochs: stop (StopIteration) after this many epochs; None: forever, for step-based training.
        num_workers, pin_memory, prefetch_factor: passed to the DataLoader.
    """

    def __init__(self, dataset, plan: BatchPlan, collate_fn: Callable, *, epochs: int | None = None,
                 num_workers: int = 0, pin_memory: bool = False, prefetch_factor: int | None = None):
        if len(dataset) != plan.num_samples:
            raise ValueError(f"the batch plan is for {plan.num_samples} samples, the dataset has {len(dataset)}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None, got {epochs}")
        self.dataset, self.plan, self.collate_fn, self.epochs = dataset, plan, collate_fn, epochs
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self.keyed_by_epoch = bool(getattr(dataset, "keyed_by_epoch", False))
        self.epoch, self.offset = 0, 0  # batches handed out in the current epoch
        self._iterator = None

    def __len__(self) -> int:
        """Batches in the current epoch (of this rank)."""
        return len(self.plan.batches(self.epoch))

    def __iter__(self) -> "ResumableStream":
        return self

    def _roll_over(self) -> None:
        while self.offset >= len(self.plan.batches(self.epoch)):
            self.epoch, self.offset = self.epoch + 1, 0
            self._iterator = None

    def _start(self) -> None:
        remaining = self.plan.batches(self.epoch)[self.offset:]
        if self.keyed_by_epoch:
            remaining = [[(self.epoch, i) for i in batch] for batch in remaining]
        kwargs = {}
        if self.num_workers > 0 and self.prefetch_factor is not None:
            kwargs["prefetch_factor"] = self.prefetch_factor
        self._iterator = iter(DataLoader(self.dataset, batch_sampler=remaining, collate_fn=self.collate_fn,
                                         num_workers=self.num_workers, pin_memory=self.pin_memory,
                                         generator=loader_generator(self.plan.seed, self.epoch), **kwargs))

    def __next__(self):
        self._roll_over()
        if self.epochs is not None and self.epoch >= self.epochs:
            raise StopIteration
        if self._iterator is None:
            self._start()
        try:
            batch = next(self._iterator)
        except StopIteration:  # the plan says how many batches there are, so this is a bug
            raise RuntimeError(f"stream ran out of batches at epoch {self.epoch} batch {self.offset}") from None
        self.offset += 1
        if self.offset >= len(self.plan.batches(self.epoch)):
            self._iterator = None  # let the workers of a finished epoch go
        return batch

    def state_dict(self) -> dict:
        """Position after the last batch handed out, with the setup it is only valid for (JSON-able)."""
        return {"epoch": self.epoch, "offset": self.offset, **self.plan.identity()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; the plan must be the one it was saved with."""
        for key, value in self.plan.identity().items():
            if state.get(key) != value:
                raise ValueError(f"stream state was saved with {key}={state.get(key)!r}, this stream has "
                                 f"{key}={value!r}: resuming would not reproduce the data order")
        epoch, offset = int(state["epoch"]), int(state["offset"])
        if epoch < 0 or not 0 <= offset <= len(self.plan.batches(epoch)):
            raise ValueError(f"stream position (epoch {epoch}, batch {offset}) is outside the plan "
                             f"({len(self.plan.batches(max(epoch, 0)))} batches per epoch)")
        self.epoch, self.offset = epoch, offset
        self._iterator = None
