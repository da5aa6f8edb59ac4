"""Downstream items -> :class:`VLBatch`: ``collate_items`` plus segment ids and the task's targets.

Per-row extras (all tensors, ``batch.extras``):
  ``example_index`` [B] int64   position of the example in its dataset (results are keyed by it)
  ``answer_slot``   [B] int64   position of the [MASK] answer slot (-1 when the input has none)
  ``answer_scores`` [B, A] f32  soft targets (VQA: leave-one-out scores; GQA: 1 at the gold class)
  ``answer_label``  [B] int64   gold class (GQA), IGNORE_INDEX when unknown or out of vocabulary
  ``label``         [B] int64   binary label (NLVR2: 1 = True), IGNORE_INDEX when unlabelled
  ``candidate_mask`` [B, R] bool  regions the grounding model may choose (RefCOCO; False on padding)
  ``region_iou``    [B, R] f32  IoU of each region with the ground-truth box (0 on padding)
  ``region_hit``    [B, R] bool that IoU counts under the task's comparison (False on padding)
NLVR2 items hold two sides (``"sides"``): rows 2i and 2i + 1 of the batch are example i's
(image 0, sentence) and (image 1, sentence); the example extras then have B / 2 rows.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.data.loading import collate_items


def pad_rows(arrays, fill: int) -> torch.Tensor:
    """int64 [len(arrays), longest] of the 1-d ``arrays``, padded with ``fill``."""
    length = max(len(a) for a in arrays)
    out = np.full((len(arrays), length), fill, dtype=np.int64)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return torch.from_numpy(out)


# per-region extras, padded like the regions: (dtype, value on padding)
REGION_EXTRAS = {"candidate_mask": (torch.bool, False), "region_iou": (torch.float32, 0.0),
                 "region_hit": (torch.bool, False)}


def _example_extras(examples: list[dict], num_answers: int | None) -> dict:
    extras = {"example_index": torch.tensor([int(e["example_index"]) for e in examples], dtype=torch.int64)}
    if "answer_slot" in examples[0]:
        extras["answer_slot"] = torch.tensor([int(e["answer_slot"]) for e in examples], dtype=torch.int64)
    if "answer_targets" in examples[0]:
        if num_answers is None:
            raise ValueError("collate: items carry answer targets but num_answers was not given")
        scores = torch.zeros(len(examples), num_answers)
        for row, e in enumerate(examples):
            idx, val = e["answer_targets"]
            scores[row, torch.as_tensor(idx, dtype=torch.int64)] = torch.as_tensor(val, dtype=torch.float32)
        extras["answer_scores"] = scores
    for name in ("answer_label", "label"):
        if name in examples[0]:
            extras[name] = torch.tensor([int(e[name]) for e in examples], dtype=torch.int64)
    for name, (dtype, fill) in REGION_EXTRAS.items():
        if name in examples[0]:
            padded = torch.full((len(examples), max(len(e[name]) for e in examples)), fill, dtype=dtype)
            for row, e in enumerate(examples):
                padded[row, :len(e[name])] = torch.as_tensor(e[name])
            extras[name] = padded
    return extras


def collate_downstream(items: list[dict], pad_id: int = 0, num_answers: int | None = None) -> VLBatch:
    """Pads a list of downstream items into one VLBatch (see the module doc for the extras)."""
    if not items:
        raise ValueError("collate_downstream: empty list of items")
    rows = [side for it in items for side in it["sides"]] if "sides" in items[0] else items
    batch = collate_items(rows, pad_id=pad_id)
    extras = dict(batch.extras)
    extras.update(_example_extras(items, num_answers))
    return batch.replace(token_type_ids=pad_rows([r["token_type_ids"] for r in rows], 0), extras=extras,
                         itm_label=None)


def label_or_ignore(value) -> int:
    """A bool/int label, or IGNORE_INDEX when the split has none (test files)."""
    return IGNORE_INDEX if value is None else int(value)


def collate_for(dataset):
    """The collate function of ``dataset``: its tokenizer's padding id and answer count (a picklable
    partial, so DataLoader workers can take it)."""
    if dataset.task == "vcr":   # four text rows per question, the image once (vcr_dataset.py)
        from .vcr_dataset import collate_vcr
        return partial(collate_vcr, pad_id=dataset.tokenizer.pad_id)
    return partial(collate_downstream, pad_id=dataset.tokenizer.pad_id,
                   num_answers=getattr(dataset, "num_answers", None))
