"""Helpers for the converter tests: random region records and checks of a converted store."""

from __future__ import annotations

import numpy as np

from vlengine.data.convert.base import Source
from vlengine.data.store import open_store


def random_records(n: int, seed: int = 0, dim: int = 2048, classes: int | None = None, max_boxes: int = 6):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, max_boxes + 1))
        h, w = int(rng.integers(100, 500)), int(rng.integers(100, 500))
        xy = rng.uniform(0, 80, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (k, 2))], 1).astype(np.float32)
        rec = {"image_id": f"COCO_{i:06d}", "image_h": h, "image_w": w, "boxes": boxes,
               "features": (rng.standard_normal((k, dim)) * 3).astype(np.float32),
               "labels": rng.integers(0, 1600, k)}
        if classes:
            soft = rng.random((k, classes)).astype(np.float32)
            rec["soft_labels"] = soft / soft.sum(1, keepdims=True)
            rec["labels"] = rec["soft_labels"].argmax(1)
        out.append(rec)
    return out


def check_store(path, records, box_scale=None, soft=False, labels=True):
    store = open_store(path, verify="full")
    assert len(store) == len(records)
    for rec in records:
        got = store.image(store.index_of(rec["image_id"]))
        expect_boxes = rec["boxes"] if box_scale is None else rec["boxes"] * box_scale(rec)
        np.testing.assert_allclose(got["boxes"], expect_boxes, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(got["features"], rec["features"].astype(np.float16))
        if labels:
            np.testing.assert_array_equal(got["labels"], rec["labels"])
        if soft:
            np.testing.assert_array_equal(got["soft_labels"], rec["soft_labels"].astype(np.float16))
    return store


class InterruptAfter(Source):
    """Wraps a source and raises KeyboardInterrupt after ``n`` records (a simulated Ctrl-C)."""

    def __init__(self, inner: Source, n: int):
        self.inner, self.n, self.name = inner, n, inner.name

    def fingerprint(self):
        return self.inner.fingerprint()

    def total(self):
        return self.inner.total()

    def records(self, skip: int = 0):
        for i, rec in enumerate(self.inner.records(skip)):
            if skip + i >= self.n:
                raise KeyboardInterrupt
            yield rec


def same_store_content(a, b):
    sa, sb = open_store(a), open_store(b)
    assert len(sa) == len(sb) and len(sa.captions) == len(sb.captions)
    for i in range(len(sa)):
        x, y = sa.image(i), sb.image(i)
        assert x["image_id"] == y["image_id"]
        for k in ("boxes", "features", "labels", "image_size"):
            np.testing.assert_array_equal(x[k], y[k])
    for j in range(len(sa.captions)):
        assert sa.caption(j)["text"] == sb.caption(j)["text"]
        assert sa.caption(j)["image_index"] == sb.caption(j)["image_index"]
