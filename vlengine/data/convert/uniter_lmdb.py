"""UNITER-style LMDB of region features, read with the ``lmdb`` package.

Each value is a dict of arrays: ``features`` float16 [N, 2048], ``norm_bb``
[N, 6 or 7] boxes normalised to the image (x1, y1, x2, y2, w, h[, area]),
``conf`` [N], ``soft_labels`` [N, C]. Two encodings exist: msgpack with
msgpack-numpy's array dicts (``{nd: True, type, shape, data}``), and npz bytes
(UNITER's ``compress=True``). Both are decoded without pickle: an array of dtype
object (which would need pickle) is refused.

UNITER does not store image sizes, so boxes stay normalised and the image size
is (1, 1) unless ``image_sizes`` maps image ids to (height, width) in pixels.
Labels are the argmax of the soft labels.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Iterator

import msgpack
import numpy as np

from .base import ConversionError, RegionRecord, Source


def _msgpack_numpy_hook(obj):
    nd = obj.get(b"nd", obj.get("nd"))
    if nd is None:
        return obj
    get = lambda k: obj.get(k.encode(), obj.get(k))
    dtype = get("type")
    dtype = dtype.decode() if isinstance(dtype, bytes) else dtype
    if not isinstance(dtype, str) or "O" in dtype:
        raise ValueError(f"array of dtype {dtype!r} (object arrays need pickle: refused)")
    data = get("data")
    arr = np.frombuffer(data, dtype=np.dtype(dtype))
    return arr.reshape(get("shape")) if nd else arr[0]


def decode_value(value: bytes, where: str) -> dict:
    """An LMDB value (msgpack-numpy or npz bytes) -> dict of numpy arrays."""
    try:
        if value[:2] == b"PK":  # a zip archive: npz
            with np.load(io.BytesIO(value), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        out = msgpack.unpackb(value, object_hook=_msgpack_numpy_hook, raw=False, strict_map_key=False)
    except (ValueError, zipfile.BadZipFile, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError,
            msgpack.exceptions.StackError, TypeError, KeyError, EOFError, OSError) as e:
        raise ConversionError(f"{where}: value is neither msgpack-numpy nor npz ({e})") from None
    if not isinstance(out, dict):
        raise ConversionError(f"{where}: value is not a dict of arrays")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in out.items()}


class LmdbSource(Source):
    name = "lmdb"

    def __init__(self, path: str, image_sizes: dict | None = None):
        import lmdb  # imported here so the rest of the package works without it
        if not os.path.exists(path):
            raise FileNotFoundError(f"lmdb: no such database {path}")
        self.path, self.image_sizes = path, image_sizes
        self._lmdb = lmdb

    def _env(self):
        try:
            return self._lmdb.open(self.path, readonly=True, lock=False, create=False, readahead=False,
                                   subdir=os.path.isdir(self.path), max_readers=1)
        except self._lmdb.Error as e:
            raise ConversionError(f"{self.path}: cannot open as LMDB ({e})") from None

    def total(self) -> int:
        env = self._env()
        try:
            return env.stat()["entries"]
        finally:
            env.close()

    def fingerprint(self) -> dict:
        files = sorted(os.listdir(self.path)) if os.path.isdir(self.path) else [self.path]
        stats = [[f, os.path.getsize(os.path.join(self.path, f) if os.path.isdir(self.path) else f)] for f in files]
        return {"format": self.name, "path": os.path.abspath(self.path), "files": stats,
                "image_sizes": bool(self.image_sizes)}

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        env = self._env()
        try:
            with env.begin(buffers=False) as txn:
                for i, (key, value) in enumerate(txn.cursor()):
                    if i < skip:
                        continue
                    image_id = key.decode("utf-8", errors="replace")
                    where = f"{self.path} key {image_id!r}"
                    if image_id.startswith("__"):  # metadata entries (e.g. "__keys__") are not images
                        continue
                    yield self._record(image_id, decode_value(value, where), where)
        except self._lmdb.Error as e:
            raise ConversionError(f"{self.path}: LMDB read failed ({e})") from None
        finally:
            env.close()

    def _record(self, image_id: str, d: dict, where: str) -> RegionRecord:
        for k in ("features", "norm_bb"):
            if k not in d:
                raise ConversionError(f"{where}: missing array {k!r} (has {sorted(d)})")
        feats, bb = np.asarray(d["features"]), np.asarray(d["norm_bb"])
        if feats.ndim != 2 or bb.ndim != 2 or bb.shape[0] != feats.shape[0] or bb.shape[1] < 4:
            raise ConversionError(f"{where}: features {list(feats.shape)} and norm_bb {list(bb.shape)} do not agree")
        boxes = bb[:, :4].astype(np.float32)
        size = (1.0, 1.0)
        if self.image_sizes is not None:
            if image_id not in self.image_sizes:
                raise ConversionError(f"{where}: no image size for this image in the image-sizes file")
            h, w = self.image_sizes[image_id]
            boxes = boxes * np.array([w, h, w, h], np.float32)
            size = (h, w)
        soft = d.get("soft_labels")
        labels = None
        if soft is not None:
            soft = np.asarray(soft, np.float32)
            if soft.ndim != 2 or soft.shape[0] != feats.shape[0]:
                raise ConversionError(f"{where}: soft_labels {list(soft.shape)} do not match {feats.shape[0]} boxes")
            labels = soft.argmax(axis=1)
        return RegionRecord(image_id=image_id, boxes=boxes, image_size=size, features=feats, labels=labels,
                            soft_labels=soft, source=where)
