"""A directory of per-image ``.npz`` files (bottom-up-attention.pytorch / detectron2 extractors).

Keys (first match wins): features ``features`` | ``x`` [N, D] (or [D, N] when
D = feature_dim and N != D, as some extractors save it transposed); boxes
``boxes`` | ``bbox`` [N, 4]; size ``image_h``/``image_w`` or ``image_size``;
optional labels ``labels`` | ``objects_id`` | ``objects`` and soft labels
``soft_labels`` | ``cls_prob``. Files are loaded with ``allow_pickle=False``:
keys that hold pickled objects (e.g. an ``info`` dict) are never read.
The image id is the file name without ``.npz``.
"""

from __future__ import annotations

import os
import zipfile
from typing import Iterator

import numpy as np

from .base import ConversionError, RegionRecord, Source

FEATURE_KEYS, BOX_KEYS = ("features", "x"), ("boxes", "bbox")
LABEL_KEYS, SOFT_KEYS = ("labels", "objects_id", "objects"), ("soft_labels", "cls_prob")


def _first(npz, keys, where, required=True):
    for k in keys:
        if k in npz.files:
            try:
                return npz[k]
            except ValueError as e:  # object array: would need pickle
                raise ConversionError(f"{where}: key {k!r} cannot be read without pickle ({e})") from None
    if required:
        raise ConversionError(f"{where}: none of the keys {list(keys)} found (has {npz.files})")
    return None


class NpzDirSource(Source):
    name = "npz"

    def __init__(self, directory: str, feature_dim: int = 2048, num_soft_classes: int | None = None):
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"npz: no such directory {directory}")
        self.directory, self.feature_dim, self.num_soft_classes = directory, feature_dim, num_soft_classes
        self.files = sorted(e.name for e in os.scandir(directory) if e.name.endswith(".npz") and e.is_file())

    def total(self) -> int:
        return len(self.files)

    def fingerprint(self) -> dict:
        return {"format": self.name, "dir": os.path.abspath(self.directory), "count": len(self.files),
                "sizes": sum(os.path.getsize(os.path.join(self.directory, f)) for f in self.files)}

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        for name in self.files[skip:]:
            path = os.path.join(self.directory, name)
            where = path
            try:
                with np.load(path, allow_pickle=False) as npz:
                    rec = self._record(name[:-4], npz, where)
            except ConversionError:
                raise
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise ConversionError(f"{where}: not a readable npz file ({e})") from None
            yield rec

    def _record(self, image_id: str, npz, where: str) -> RegionRecord:
        feats = np.asarray(_first(npz, FEATURE_KEYS, where))
        boxes = np.asarray(_first(npz, BOX_KEYS, where), dtype=np.float32)
        if feats.ndim == 2 and feats.shape[0] == self.feature_dim and feats.shape[1] == boxes.shape[0] != self.feature_dim:
            feats = feats.T
        if "image_h" in npz.files and "image_w" in npz.files:
            size = (float(npz["image_h"]), float(npz["image_w"]))
        elif "image_size" in npz.files:
            size = tuple(float(v) for v in np.asarray(npz["image_size"]).reshape(-1)[:2])
        else:
            raise ConversionError(f"{where}: no image size (image_h/image_w or image_size)")
        labels = _first(npz, LABEL_KEYS, where, required=False)
        soft = _first(npz, SOFT_KEYS, where, required=False) if self.num_soft_classes else None
        if self.num_soft_classes and soft is None:
            raise ConversionError(f"{where}: no soft labels ({list(SOFT_KEYS)}) but the store expects them")
        return RegionRecord(image_id=image_id, boxes=boxes, image_size=size, features=feats,
                            labels=None if labels is None else np.asarray(labels).reshape(-1),
                            soft_labels=soft, source=where)
