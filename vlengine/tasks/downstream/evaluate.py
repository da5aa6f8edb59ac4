"""Scoring a downstream dataset with a model's ``predict``, sharded over ranks (``sharding``).

Each rank loads and scores only its own contiguous share of the examples; the
per-example results (keyed by the id the official metric uses) meet on rank 0.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader

from .collate import collate_for
from .sharding import _world, gather_results, shard_range


@torch.no_grad()
def predict_sharded(model, dataset, batch_size: int = 64, device="cpu", num_workers: int = 0,
                    collate: Callable | None = None, to_result: Callable = lambda p: p.item(),
                    cast=lambda b: b, group=None) -> dict | None:
    """``{example_id: to_result(prediction)}`` over the whole dataset on rank 0 (None elsewhere).

    ``model.predict(batch)`` returns one prediction per example (rows of its
    ``example_index`` extra); ``to_result`` turns one into what the metric reads
    (e.g. a class index into its answer string).
    """
    rank, world = _world(group)
    indices = list(shard_range(len(dataset), rank, world))
    if collate is None:
        collate = collate_for(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, collate_fn=collate, num_workers=num_workers)
    was_training = model.training
    model.eval()
    local = {}
    try:
        for batch in loader:
            predictions = model.predict(cast(batch.to(device))).cpu()
            examples = batch.extras["example_index"]
            if predictions.shape[0] != examples.shape[0]:
                raise ValueError(f"predict returned {predictions.shape[0]} predictions for "
                                 f"{examples.shape[0]} examples")
            for index, prediction in zip(examples.tolist(), predictions):
                local[dataset.example_id(index)] = to_result(prediction)
    finally:
        model.train(was_training)
    # a generator: only rank 0 walks the ids, to check every example arrived exactly once
    expected = (dataset.example_id(i) for i in range(len(dataset)))
    return gather_results(local, expected_ids=expected, group=group)
