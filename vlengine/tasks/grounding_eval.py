"""Does the pretrained model use the image? Held-out evaluations of a VL-BERT-style objective.

* attribute MLM: in each held-out caption one attribute word (colour, size or
  shape: words the caption grammar draws independently of the rest of the text,
  so only the image tells them) is replaced by [MASK] and predicted, once with
  the image and once with the image removed (the row becomes a text-only row,
  the same input the text-only corpus gives in training). The gap is the
  "visual clue" gain.
* masked region classification: one object region per pair is masked (its
  appearance replaced by the learned mask vector) and its class predicted from
  the caption and the other regions.
* zero-shot retrieval: N images x N captions scored by the ITM head (trained in
  pretraining, never on retrieval); R@1 in both directions.

All draws come from a generator with a fixed seed: the numbers are a function
of the model and the data only.
"""

from __future__ import annotations

from typing import Iterable

import torch

from vlengine.batch import IGNORE_INDEX, VLBatch

_REGION_FIELDS = ("region_features", "region_boxes", "region_valid", "region_labels", "region_soft_labels",
                  "image_size", "images", "region_masked", "region_targets", "region_feature_targets")


def without_image(batch: VLBatch) -> VLBatch:
    """The batch with every visual input dropped: all rows become text-only rows."""
    return batch.replace(**{name: None for name in _REGION_FIELDS},
                         text_only=torch.ones(batch.batch_size, dtype=torch.bool))


def mask_one_attribute(batch: VLBatch, attribute_ids: torch.Tensor, mask_id: int,
                       generator: torch.Generator) -> tuple[VLBatch, torch.Tensor]:
    """Mask one attribute-word token per row (rows without one get no label).

    Returns the masked batch (mlm_labels set at the masked position) and [B] the
    attribute id that was masked (IGNORE_INDEX for rows without one).
    """
    ids = batch.input_ids
    is_attr = torch.isin(ids, attribute_ids) & batch.text_mask
    # a random attribute position per row: the argmax of random scores restricted to attribute tokens
    scores = torch.rand(ids.shape, generator=generator).masked_fill(~is_attr, -1.0)
    pos = scores.argmax(1)
    has = is_attr.any(1)
    rows = torch.arange(ids.shape[0])
    target = torch.where(has, ids[rows, pos], torch.full_like(pos, IGNORE_INDEX))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[rows[has], pos[has]] = ids[rows[has], pos[has]]
    masked_ids = ids.clone()
    masked_ids[rows[has], pos[has]] = mask_id
    return batch.replace(input_ids=masked_ids, mlm_labels=labels), target


def mask_one_region(batch: VLBatch, generator: torch.Generator) -> VLBatch:
    """Mask one labelled object region per row (never region 0, the whole image)."""
    labelled = batch.region_valid & (batch.region_labels != IGNORE_INDEX)
    labelled[:, 0] = False
    scores = torch.rand(labelled.shape, generator=generator).masked_fill(~labelled, -1.0)
    pos = scores.argmax(1)
    has = labelled.any(1)
    rows = torch.arange(labelled.shape[0])
    masked = torch.zeros_like(labelled)
    masked[rows[has], pos[has]] = True
    targets = torch.where(masked, batch.region_labels, torch.full_like(batch.region_labels, IGNORE_INDEX))
    return batch.replace(region_masked=masked, region_targets=targets)


@torch.no_grad()
def attribute_and_region_accuracy(objective, batches: Iterable[VLBatch], attribute_groups: dict[str, list[int]],
                                  mask_id: int, device, seed: int = 0, cast=lambda b: b) -> dict[str, float]:
    """MLM accuracy on attribute words with / without the image (overall and per group), and
    masked region classification accuracy, over caption rows that are ITM positives."""
    generator = torch.Generator().manual_seed(seed)
    all_ids = torch.tensor(sorted({i for ids in attribute_groups.values() for i in ids}), dtype=torch.int64)
    group_of = {i: name for name, ids in attribute_groups.items() for i in ids}
    correct = {"with": 0, "without": 0}
    per_group = {(cond, g): [0, 0] for cond in correct for g in attribute_groups}
    total = 0
    region_correct = region_total = 0
    for batch in batches:
        batch = _matched_image_rows(batch)
        if batch is None:
            continue
        masked, target = mask_one_attribute(batch, all_ids, mask_id, generator)
        labelled = target != IGNORE_INDEX
        for cond, view in (("with", masked), ("without", without_image(masked))):
            out = objective.model(cast(view.to(device)))
            logits, labels = objective.mlm.masked_logits(out.text, view.mlm_labels.to(device))
            hits = (logits.argmax(-1) == labels).cpu()
            correct[cond] += int(hits.sum())
            for hit, label in zip(hits.tolist(), labels.cpu().tolist()):
                stats = per_group[(cond, group_of[label])]
                stats[0] += int(hit)
                stats[1] += 1
        total += int(labelled.sum())
        if getattr(objective, "mrc", None) is None:
            continue
        region_batch = mask_one_region(batch, generator)
        out = objective.model(cast(region_batch.to(device)))
        sel = region_batch.region_masked.to(device)
        if bool(sel.any()):
            pred = objective.mrc(out.regions[sel]).argmax(-1)
            region_correct += int((pred == region_batch.region_targets.to(device)[sel]).sum())
            region_total += int(sel.sum())
    if total == 0:
        raise ValueError("evaluation data holds no caption with an attribute word")
    results = {
        "attr_mlm_acc_with_image": correct["with"] / total,
        "attr_mlm_acc_without_image": correct["without"] / total,
        "attr_words": float(total),
        "masked_region_acc": region_correct / region_total if region_total else float("nan"),
    }
    results["visual_clue_gain_points"] = 100.0 * (results["attr_mlm_acc_with_image"]
                                                  - results["attr_mlm_acc_without_image"])
    for (cond, group), (hits, count) in per_group.items():
        if count:
            results[f"attr_{group}_acc_{cond}_image"] = hits / count
    return results


def _matched_image_rows(batch: VLBatch) -> VLBatch | None:
    """The batch's image rows that are ITM positives (None if it has none)."""
    keep = batch.image_rows
    if batch.itm_label is not None:
        keep = keep & (batch.itm_label == 1)
    return _select_rows(batch, keep) if bool(keep.any()) else None


def _select_rows(batch: VLBatch, keep: torch.Tensor) -> VLBatch:
    changes = {}
    for name, value in vars(batch).items():
        if torch.is_tensor(value) and value.shape[:1] == keep.shape:
            changes[name] = value[keep]
    if batch.extras:
        changes["extras"] = {k: v[keep] if torch.is_tensor(v) and v.shape[:1] == keep.shape else v
                             for k, v in batch.extras.items()}
    return batch.replace(**changes)


@torch.no_grad()
def zero_shot_retrieval(objective, items: list[dict], collate, device, batch_size: int = 256,
                        cast=lambda b: b) -> dict[str, float]:
    """R@1 of ITM scores over all N x N caption/image pairs of `items` (one caption per image).

    `items` are dataset items (dicts with input_ids, word_ids, boxes, features, ...);
    pair (i, j) takes the caption of item i and the image fields of item j.
    """
    if getattr(objective, "itm", None) is None:
        raise ValueError("zero-shot retrieval needs an objective trained with the ITM head (itm_weight > 0)")
    n = len(items)
    if n < 2:
        raise ValueError(f"retrieval needs at least 2 image-caption pairs, got {n}")
    image_keys = [k for k in ("boxes", "labels", "features", "soft_labels", "image_size", "image") if k in items[0]]
    pairs = [(i, j) for i in range(n) for j in range(n)]
    scores = torch.empty(n * n)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        rows = []
        for i, j in chunk:
            row = {k: v for k, v in items[i].items() if k not in image_keys}
            row.update({k: items[j][k] for k in image_keys})
            rows.append(row)
        batch = cast(collate(rows).to(device))
        out = objective.model(batch)
        logits = objective.itm_logits(out).float()
        scores[start:start + len(chunk)] = (logits[:, 1] - logits[:, 0]).cpu()
    matrix = scores.view(n, n)  # [caption i, image j]
    truth = torch.arange(n)
    text_to_image = (matrix.argmax(1) == truth).float().mean().item()
    image_to_text = (matrix.argmax(0) == truth).float().mean().item()
    return {"retrieval_t2i_r1": text_to_image, "retrieval_i2t_r1": image_to_text,
            "retrieval_r1": (text_to_image + image_to_text) / 2, "retrieval_candidates": float(n)}


def without_caption(batch: VLBatch) -> VLBatch:
    """Every row's text cut to "[CLS] [SEP]": the image stays, the caption is gone."""
    rows = torch.arange(batch.batch_size, device=batch.input_ids.device)
    cls = batch.input_ids[rows, batch.cls_index]
    sep = batch.input_ids[rows, batch.cls_index + batch.text_lengths - 1]
    ids = torch.stack((cls, sep), dim=1)
    return batch.replace(input_ids=ids, text_mask=torch.ones_like(ids, dtype=torch.bool),
                         word_ids=torch.full_like(ids, -1), token_type_ids=None, mlm_labels=None)


@torch.no_grad()
def vision_only_region_accuracy(objective, batches: Iterable[VLBatch], device, seed: int = 0,
                                cast=lambda b: b) -> dict[str, float]:
    """The masking leak, measured in the model: a masked region's class predicted with the caption removed.

    One labelled object region per image row is masked (as in training: the model's
    front-end hides it from its pixels or C4 map, per its mask mode) and classified by
    the MRC head from the image alone. If the masking hides the region, only its box
    geometry and the other regions remain, and the accuracy sits near chance; if it does
    not (mask mode "none", or precomputed features with a whole-image region 0 computed
    from the unmasked image), the region's class is read off the pixels.

    ``masked_region_chance`` is the majority class's share of the evaluated regions
    (the best guess without input). The box still tells the object's size, so a model
    that learned it sits up to a size-classes factor above it with the region hidden.
    """
    if getattr(objective, "mrc", None) is None:
        raise ValueError("vision-only region accuracy needs an objective with a masked region classification head")
    generator = torch.Generator().manual_seed(seed + 1)   # its own draws: the other metrics' stay as they were
    correct = total = 0
    counts: dict[int, int] = {}
    for batch in batches:
        batch = _matched_image_rows(batch)
        if batch is None:
            continue
        batch = without_caption(mask_one_region(batch, generator))
        sel = batch.region_masked
        if not bool(sel.any()):
            continue
        out = objective.model(cast(batch.to(device)))
        targets = batch.region_targets[sel]
        pred = objective.mrc(out.regions[sel.to(device)]).argmax(-1).cpu()
        correct += int((pred == targets).sum())
        total += int(sel.sum())
        for label in targets.tolist():
            counts[label] = counts.get(label, 0) + 1
    if total == 0:
        raise ValueError("evaluation data holds no labelled object region")
    return {"masked_region_acc_vision_only": correct / total,
            "masked_region_chance": max(counts.values()) / total, "masked_region_vision_only_count": float(total)}
