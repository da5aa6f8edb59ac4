"""One image's region fields from a region store, in the item layout ``collate_items`` pads.

Features stay memory-mapped views: collate copies them once, into the batch
(no whole feature file is ever loaded, whatever the number of loader workers).
"""

from __future__ import annotations

import numpy as np

from vlengine.data.loading.datasets import store_region_item


def region_item(store, index: int, max_regions: int | None = None) -> dict:
    """``{"boxes", "labels", "features", "image_size", "image_index"}`` of store record ``index``
    (the first ``max_regions`` boxes: region 0 is the whole image where the source has one)."""
    rec = store.image(int(index))
    r = rec["num_boxes"] if max_regions is None else min(rec["num_boxes"], max_regions)
    item = {"boxes": np.array(rec["boxes"][:r], dtype=np.float32),
            "labels": np.array(rec["labels"][:r], dtype=np.int64),
            "image_size": np.array(rec["image_size"], dtype=np.float32), "image_index": int(index)}
    if "features" in rec:
        item["features"] = rec["features"][:r]
    else:
        raise ValueError(f"store {store.path} has no region features: the downstream datasets read "
                         f"precomputed features (convert the images with a feature extractor first)")
    return item


def image_region_item(store, index: int, max_regions: int | None, transform) -> dict:
    """End to end: store record ``index``'s region fields with its decoded image (``image``, boxes and
    ``image_size`` in the transformed image's pixels; no features read), ``transform`` an ImageTransform
    applied without a flip (a mirrored image would contradict "left" / "right" in the text)."""
    rec = store.image(int(index))
    item = store_region_item(store, int(index), max_regions, load_features=False, record=rec)
    image, boxes, size = transform(bytes(rec["image"]), item["boxes"], flip=False,
                                   source=f"store {store.path} image {rec['image_id']}")
    item.update(image=image, boxes=boxes, image_size=size)
    return item


def text_item(encoded, max_length: int | None = None) -> dict:
    """``input_ids``, ``word_ids`` and ``token_type_ids`` of one encoded text (a pair or a single text)."""
    ids = np.asarray(encoded.ids, dtype=np.int64)
    segments = encoded.segment_ids if encoded.segment_ids is not None else np.zeros_like(ids)
    return {"input_ids": ids, "word_ids": np.asarray(encoded.word_ids, dtype=np.int64),
            "token_type_ids": np.asarray(segments, dtype=np.int64)}
