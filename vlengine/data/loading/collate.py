"""Padding item dicts into a :class:`~vlengine.batch.VLBatch`, and joining two batches."""

from __future__ import annotations

import numpy as np
import torch

from vlengine.batch import IGNORE_INDEX, VLBatch


def _pad_stack(arrays, length: int, fill, dtype) -> np.ndarray:
    first = arrays[0]
    shape = (len(arrays), length, *first.shape[1:])
    out = np.zeros(shape, dtype=dtype) if fill == 0 else np.full(shape, fill, dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = a
    return out


def collate_items(items: list[dict], pad_id: int = 0) -> VLBatch:
    """Pads a list of dataset items (caption-image, question-image and/or text-only) into one VLBatch.

    Text is padded to the longest row with ``pad_id``; regions to the most boxes
    (``region_valid`` False on padding, text-only rows have no valid region);
    labels unknown to the detector (-1 on disk) become IGNORE_INDEX.
    """
    if not items:
        raise ValueError("collate_items: empty list of items")
    T = max(len(it["input_ids"]) for it in items)
    ids = _pad_stack([it["input_ids"] for it in items], T, pad_id, np.int64)
    words = _pad_stack([it["word_ids"] for it in items], T, -1, np.int64)
    lens = np.array([len(it["input_ids"]) for it in items])
    text_mask = np.arange(T)[None, :] < lens[:, None]
    batch = dict(input_ids=torch.from_numpy(ids), text_mask=torch.from_numpy(text_mask),
                 word_ids=torch.from_numpy(words),
                 text_only=torch.tensor([bool(it.get("text_only", False)) for it in items]),
                 itm_label=torch.tensor([int(it.get("itm_label", 1)) for it in items], dtype=torch.int64))
    if any("qa_label" in it for it in items):
        batch["qa_label"] = torch.tensor([int(it.get("qa_label", IGNORE_INDEX)) for it in items], dtype=torch.int64)
    extras = {"caption_index": torch.tensor([int(it.get("caption_index", -1)) for it in items]),
              "image_index": torch.tensor([int(it.get("image_index", -1)) for it in items]),
              "question_index": torch.tensor([int(it.get("question_index", -1)) for it in items])}
    batch.update(collate_regions(items))
    return VLBatch(**batch, extras=extras)


def collate_regions(items: list[dict]) -> dict:
    """The region fields of a batch (``region_boxes``, ``region_valid``, ``region_labels``, ``image_size``
    and, where the items carry them, ``region_features``, ``region_soft_labels``, ``images``): rows
    without ``boxes`` (text-only) are all padding; {} when no item has regions."""
    B = len(items)
    visual = [it for it in items if "boxes" in it]
    if not visual:
        return {}
    R = max(it["boxes"].shape[0] for it in visual)
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64)}
    boxes = _pad_stack([it.get("boxes", empty["boxes"]) for it in items], R, 0.0, np.float32)
    labels = _pad_stack([it.get("labels", empty["labels"]) for it in items], R, -1, np.int64)
    nbox = np.array([it["boxes"].shape[0] if "boxes" in it else 0 for it in items])
    valid = np.arange(R)[None, :] < nbox[:, None]
    labels[labels < 0] = IGNORE_INDEX
    sizes = np.stack([it.get("image_size", np.zeros(2, np.float32)) for it in items]).astype(np.float32)
    batch = dict(region_boxes=torch.from_numpy(boxes), region_valid=torch.from_numpy(valid),
                 region_labels=torch.from_numpy(labels), image_size=torch.from_numpy(sizes))
    if "features" in visual[0]:
        D = visual[0]["features"].shape[1]
        feats = _pad_stack([it.get("features", np.zeros((0, D), np.float16)) for it in items], R, 0, np.float16)
        batch["region_features"] = torch.from_numpy(feats)
    if "soft_labels" in visual[0]:
        C = visual[0]["soft_labels"].shape[1]
        soft = _pad_stack([it.get("soft_labels", np.zeros((0, C), np.float16)) for it in items], R, 0, np.float32)
        batch["region_soft_labels"] = torch.from_numpy(soft)
    if "image" in visual[0]:
        H = max(it["image"].shape[1] for it in visual)
        W = max(it["image"].shape[2] for it in visual)
        imgs = np.zeros((B, 3, H, W), np.float32)  # zero = the mean pixel after normalisation
        for i, it in enumerate(items):
            if "image" in it:
                _, h, w = it["image"].shape
                imgs[i, :, :h, :w] = it["image"]
        batch["images"] = torch.from_numpy(imgs)
    return batch


def _pad_dim(t: torch.Tensor, dim: int, size: int, fill) -> torch.Tensor:
    if t.shape[dim] == size:
        return t
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, torch.full(shape, fill, dtype=t.dtype)], dim=dim)


def concat_batches(a: VLBatch, b: VLBatch, pad_id: int = 0) -> VLBatch:
    """Rows of ``a`` then rows of ``b`` in one batch (VL-BERT's caption + text-only step).

    Text and region dimensions are padded to the larger of the two; region
    fields missing from one side (a text-only batch) are filled as padding.
    """
    T = max(a.input_ids.shape[1], b.input_ids.shape[1])
    fills = {"input_ids": pad_id, "text_mask": False, "word_ids": -1, "mlm_labels": IGNORE_INDEX, "token_type_ids": 0}
    out = {}
    for name, fill in fills.items():
        x, y = getattr(a, name, None), getattr(b, name, None)
        if x is None and y is None:
            continue
        if x is None or y is None:
            raise ValueError(f"concat_batches: field {name!r} is set in one batch only")
        out[name] = torch.cat([_pad_dim(x, 1, T, fill), _pad_dim(y, 1, T, fill)])
    for name in ("text_only", "itm_label"):
        out[name] = torch.cat([getattr(a, name), getattr(b, name)])
    if a.qa_label is not None or b.qa_label is not None:
        out["qa_label"] = torch.cat([t if t is not None else torch.full((n,), IGNORE_INDEX, dtype=torch.int64)
                                     for t, n in ((a.qa_label, a.batch_size), (b.qa_label, b.batch_size))])
    # region fields: [B, R, ...] padded to the larger R; absent side = all padding
    region_fields = {"region_features": 0, "region_boxes": 0.0, "region_valid": False, "region_labels": IGNORE_INDEX,
                     "region_soft_labels": 0.0, "region_masked": False, "region_targets": IGNORE_INDEX,
                     "region_feature_targets": 0}
    Ra = a.region_valid.shape[1] if a.region_valid is not None else 0
    Rb = b.region_valid.shape[1] if b.region_valid is not None else 0
    R = max(Ra, Rb)
    for name, fill in region_fields.items():
        x, y = getattr(a, name), getattr(b, name)
        if x is None and y is None:
            continue
        ref = x if x is not None else y
        parts = []
        for t, rows in ((x, a.batch_size), (y, b.batch_size)):
            if t is None:
                t = torch.full((rows, R, *ref.shape[2:]), fill, dtype=ref.dtype)
            parts.append(_pad_dim(t, 1, R, fill))
        out[name] = torch.cat(parts)
    if a.image_size is not None or b.image_size is not None:
        out["image_size"] = torch.cat([s if s is not None else torch.zeros(n, 2)
                                       for s, n in ((a.image_size, a.batch_size), (b.image_size, b.batch_size))])
    if a.images is not None or b.images is not None:
        ref = a.images if a.images is not None else b.images
        H = max(t.shape[2] for t in (a.images, b.images) if t is not None)
        W = max(t.shape[3] for t in (a.images, b.images) if t is not None)
        parts = []
        for t, n in ((a.images, a.batch_size), (b.images, b.batch_size)):
            t = torch.zeros(n, 3, H, W, dtype=ref.dtype) if t is None else _pad_dim(_pad_dim(t, 2, H, 0.0), 3, W, 0.0)
            parts.append(t)
        out["images"] = torch.cat(parts)
    if a.extras is not None or b.extras is not None:
        ea, eb = a.extras or {}, b.extras or {}
        out["extras"] = {k: torch.cat([ea[k], eb[k]]) for k in ea.keys() & eb.keys()
                         if isinstance(ea[k], torch.Tensor) and isinstance(eb[k], torch.Tensor)}
    return VLBatch(**out)
