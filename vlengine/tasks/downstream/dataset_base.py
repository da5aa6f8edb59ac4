"""The part every downstream dataset shares: an annotation set joined with a region store.

The records' image ids are resolved to store indices once, at construction
(``AnnotationSet.image_indices``), so a missing image fails before training
starts and an item costs one record parse plus memory-mapped region reads.
Items are requested as ``index`` or ``(epoch, index)`` (the pretraining
loader's key); nothing about an item is random, so the epoch is ignored.
"""

from __future__ import annotations

import os

from vlengine.data.annotations import AnnotationSet, open_annotations
from vlengine.data.store import Store, open_store

from .regions import image_region_item, region_item, text_item


class AnnotatedImageDataset:
    """Base of the task datasets: ``len``, ``[key]`` (an item dict), ``example_id(i)``, ``record(i)``.

    Args:
        annotations: an annotation set of the task (or its path), from ``vlengine data convert``.
        store: the region-feature store holding every image the records name (or its path).
        tokenizer: a ``vlengine.data.text.TextEncoder`` whose vocabulary the model was trained with.
        max_text_len: cut texts to this many tokens (pairs: from the longer segment).
        max_regions: keep at most this many boxes per image.
        with_image: False drops every image (rows become text-only rows, as the text-only corpus's in
            pretraining): the question-only baseline, trained with the same head.
        image_transform: end to end (a model with a visual front-end; RefCOCO, VCR): an ImageTransform,
            and the store is a raw-image store whose images the items carry (no features read).
    """

    task = ""

    def __init__(self, annotations: AnnotationSet | str, store: Store | str, tokenizer, max_text_len: int | None = 64,
                 max_regions: int | None = None, with_image: bool = True, image_transform=None):
        self.annotations = open_annotations(annotations) if isinstance(annotations, (str, os.PathLike)) else annotations
        if self.annotations.task != self.task:
            raise ValueError(f"annotation set {self.annotations.path} holds task {self.annotations.task!r}, "
                             f"this dataset reads {self.task!r}")
        self.store = open_store(store) if isinstance(store, (str, os.PathLike)) else store
        if image_transform is not None and not self.store.has_images:
            raise ValueError(f"store {self.store.path} holds no images: an end-to-end model (model.visual) reads a "
                             "raw-image store")
        if with_image and image_transform is None and not self.store.has_features:
            raise ValueError(f"store {self.store.path} has no region features: the downstream datasets read "
                             f"precomputed features (or, end to end with model.visual, the store's images)")
        if max_text_len is not None and max_text_len < 4:
            raise ValueError(f"max_text_len must be >= 4 ([CLS], a token, [SEP] and room for an answer slot), "
                             f"got {max_text_len}")
        self.tokenizer = tokenizer
        self.max_text_len = max_text_len
        self.max_regions = max_regions
        self.with_image = with_image
        self.image_transform = image_transform
        self.image_index = self.annotations.image_indices(self.store)   # [n, images per record]

    def __len__(self) -> int:
        return len(self.annotations)

    def record(self, index: int) -> dict:
        return self.annotations[index]

    def example_id(self, index: int):
        """The id the task's official metric keys results by."""
        return self.record(index)["id"]

    def _index(self, key) -> int:
        index = key[1] if isinstance(key, tuple) else key
        if not 0 <= index < len(self):
            raise IndexError(f"{self.task} example {index} out of range [0, {len(self)})")
        return int(index)

    def _side(self, encoded, image_column: int, index: int) -> dict:
        item = text_item(encoded)
        if not self.with_image:
            item["text_only"] = True
            return item
        item.update(self._regions(self.image_index[index, image_column]))
        return item

    def _regions(self, store_index) -> dict:
        """The region fields of store record ``store_index``: its features, or end to end its decoded image."""
        if self.image_transform is None:
            return region_item(self.store, store_index, self.max_regions)
        return image_region_item(self.store, store_index, self.max_regions, self.image_transform)
