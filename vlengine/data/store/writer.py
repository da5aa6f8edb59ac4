"""Streaming, crash-safe writer of a vlengine store.

Everything is written under ``<out>.partial/`` and renamed to ``<out>`` only by
:meth:`StoreWriter.close`, so a failed or interrupted write never leaves
something at ``<out>`` that looks like a store. Memory stays constant: record
values go straight to the shard files; only the offsets of the open shard are
kept (8 bytes a record).

Resume: :meth:`StoreWriter.checkpoint` closes the open shards and records how far
the source was read (``progress.json``); a writer opened again with
``resume=True`` drops anything written after the last checkpoint and reports the
position, so a converter can skip what is already converted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Sequence

import numpy as np

from ...atomic import fsync_dir, write_bytes
from .format import (CAPTIONS, FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, REGIONS, SHARD_MANIFEST, VOCAB_FILE,
                     Column, StoreFormatError, caption_columns, data_file, offsets_file, read_json,
                     region_columns, sha256_file, shard_dir_name, write_json_atomic)

PROGRESS_FILE = "progress.json"
FP16_MAX = 65504.0


class _ShardWriter:
    """Appends records of one table to one shard directory."""

    def __init__(self, directory: str, columns: Sequence[Column]):
        self.directory = directory
        os.makedirs(directory, exist_ok=False)
        self.columns = list(columns)
        self.files = {c.name: open(os.path.join(directory, data_file(c.name)), "wb") for c in self.columns}
        self.hashes = {c.name: hashlib.sha256() for c in self.columns}
        self.offsets = {c.name: [0] for c in self.columns if c.ragged}
        self.num_records = 0
        self.num_bytes = 0

    def append(self, values: dict[str, np.ndarray]) -> None:
        for c in self.columns:
            arr = values[c.name]
            buf = arr.tobytes()
            self.files[c.name].write(buf)
            self.hashes[c.name].update(buf)
            self.num_bytes += len(buf)
            if c.ragged:
                self.offsets[c.name].append(self.offsets[c.name][-1] + arr.shape[0])
        self.num_records += 1

    def close(self) -> dict:
        files = {}
        for c in self.columns:
            f = self.files[c.name]
            f.flush()
            os.fsync(f.fileno())
            f.close()
            entry = {"file": data_file(c.name), "bytes": os.path.getsize(f.name), "sha256": self.hashes[c.name].hexdigest()}
            if c.ragged:
                path = os.path.join(self.directory, offsets_file(c.name))
                offs = np.asarray(self.offsets[c.name], dtype="<i8")
                write_bytes(path, offs.tobytes())
                entry["offsets"] = {"file": offsets_file(c.name), "bytes": offs.nbytes,
                                    "sha256": hashlib.sha256(offs.tobytes()).hexdigest()}
            files[c.name] = entry
        manifest = {"dir": os.path.basename(self.directory), "num_records": self.num_records, "files": files}
        write_json_atomic(os.path.join(self.directory, SHARD_MANIFEST), manifest)
        fsync_dir(self.directory)
        return manifest

    def abandon(self) -> None:
        for f in self.files.values():
            f.close()


class _TableWriter:
    def __init__(self, root: str, name: str, columns: Sequence[Column], shards: list[dict] | None = None):
        self.root, self.name, self.columns = root, name, list(columns)
        self.by_name = {c.name: c for c in self.columns}
        self.shards: list[dict] = list(shards or [])
        self.open: _ShardWriter | None = None

    @property
    def num_records(self) -> int:
        return sum(s["num_records"] for s in self.shards) + (self.open.num_records if self.open else 0)

    def append(self, values: dict[str, np.ndarray]) -> int:
        if self.open is None:
            self.open = _ShardWriter(os.path.join(self.root, shard_dir_name(self.name, len(self.shards))), self.columns)
        index = self.num_records
        self.open.append(values)
        return index

    def close_shard(self) -> None:
        if self.open is not None and self.open.num_records > 0:
            self.shards.append(self.open.close())
        elif self.open is not None:
            self.open.abandon()
            shutil.rmtree(self.open.directory, ignore_errors=True)
        self.open = None

    def to_json(self) -> dict:
        return {"columns": {c.name: c.to_json() for c in self.columns}, "num_records": self.num_records,
                "shards": self.shards}


class StoreWriter:
    """Writes a store: ``add_image`` / ``add_caption`` records, then :meth:`close`.

    Args:
        out_dir: final store directory (must not exist unless ``overwrite``).
        feature_dim: region feature size (2048), or None for a raw-image store.
        num_soft_classes: size of the soft label vectors (e.g. 1601), or None.
        with_images: store encoded image bytes per record (raw-image mode).
        shard_bytes / shard_records: a region shard is closed (and a checkpoint
            becomes due) when either limit is reached.
        vocab_file: copied into the store; caption token ids refer to it.
        attrs: free JSON metadata saved in the index (e.g. the source format).
        resume: continue a ``<out>.partial`` left by an interrupted writer with
            the same settings; see :attr:`resume_position`.
        fingerprint: JSON-able description of the source and options; resume
            refuses a partial store written with a different one.
    """

    def __init__(self, out_dir: str, feature_dim: int | None = 2048, num_soft_classes: int | None = None,
                 with_images: bool = False, shard_bytes: int = 256 << 20, shard_records: int = 100_000,
                 vocab_file: str | None = None, attrs: dict | None = None, overwrite: bool = False,
                 resume: bool = False, fingerprint=None):
        self.out_dir = os.path.abspath(out_dir)
        if os.path.exists(self.out_dir) and not overwrite:
            raise FileExistsError(f"out_dir: {self.out_dir} already exists (pass overwrite=True to replace it)")
        self.work_dir = self.out_dir + ".partial"
        self.overwrite = overwrite
        self.feature_dim = feature_dim
        self.num_soft_classes = num_soft_classes
        self.shard_bytes, self.shard_records = int(shard_bytes), int(shard_records)
        self.attrs = dict(attrs or {})
        self.fingerprint = fingerprint
        self.settings = {"feature_dim": feature_dim, "num_soft_classes": num_soft_classes,
                         "with_images": bool(with_images), "fingerprint": fingerprint}
        self.resume_position = None
        self._closed = False
        reg_cols, cap_cols = region_columns(feature_dim, num_soft_classes, with_images), caption_columns()
        progress = os.path.join(self.work_dir, PROGRESS_FILE)
        if resume and os.path.exists(progress):
            state = read_json(progress, "resume")
            if state.get("settings") != self.settings:
                raise ValueError(f"resume: {self.work_dir} was written with different settings or source "
                                 f"({state.get('settings')} != {self.settings}); delete it to start over")
            self._drop_unlisted(state)
            self.tables = {REGIONS: _TableWriter(self.work_dir, REGIONS, reg_cols, state["tables"][REGIONS]),
                           CAPTIONS: _TableWriter(self.work_dir, CAPTIONS, cap_cols, state["tables"][CAPTIONS])}
            self.resume_position = state["position"]
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            os.makedirs(self.work_dir)
            self.tables = {REGIONS: _TableWriter(self.work_dir, REGIONS, reg_cols),
                           CAPTIONS: _TableWriter(self.work_dir, CAPTIONS, cap_cols)}
        if vocab_file is not None:
            shutil.copyfile(vocab_file, os.path.join(self.work_dir, VOCAB_FILE))

    def _drop_unlisted(self, state: dict) -> None:
        """Removes shard directories written after the last checkpoint and checks the kept ones."""
        keep = {s["dir"] for t in state["tables"].values() for s in t}
        for name in os.listdir(self.work_dir):
            full = os.path.join(self.work_dir, name)
            if os.path.isdir(full) and name not in keep:
                shutil.rmtree(full)
        for shards in state["tables"].values():
            for s in shards:
                for entry in s["files"].values():
                    for e in (entry, entry.get("offsets")):
                        if e is None:
                            continue
                        path = os.path.join(self.work_dir, s["dir"], e["file"])
                        if not os.path.exists(path) or os.path.getsize(path) != e["bytes"] or sha256_file(path) != e["sha256"]:
                            raise StoreFormatError(f"resume: {path} does not match its checkpoint; delete {self.work_dir} to start over")

    # ---- records -------------------------------------------------------------------------------

    @property
    def num_images(self) -> int:
        return self.tables[REGIONS].num_records

    @property
    def num_captions(self) -> int:
        return self.tables[CAPTIONS].num_records

    def add_image(self, image_id: str, boxes, image_size, features=None, labels=None, soft_labels=None,
                  image_bytes: bytes | None = None, source: str | None = None) -> int:
        """Appends one image's regions; returns its global record index.

        ``boxes`` [N, 4] pixels (x1, y1, x2, y2); ``image_size`` (height, width);
        ``features`` [N, D] (stored as float16); ``labels`` [N] ints (-1 unknown);
        ``soft_labels`` [N, C]. ``source`` names where the record came from
        (e.g. ``"feats.tsv line 12"``) for error messages.
        """
        where = source or f"image {image_id!r}"
        table = self.tables[REGIONS]
        boxes = _as_array(boxes, np.float32, "boxes", where)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{where}: boxes must have shape [N, 4], got {list(boxes.shape)}")
        n = boxes.shape[0]
        if not np.isfinite(boxes).all():
            raise ValueError(f"{where}: boxes contain NaN or inf")
        if n and ((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
            bad = int(np.nonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))[0][0])
            raise ValueError(f"{where}: box {bad} is inverted (x2 < x1 or y2 < y1): {boxes[bad].tolist()}")
        size = _as_array(image_size, np.float32, "image_size", where).reshape(-1)
        if size.shape != (2,) or not np.isfinite(size).all() or (size <= 0).any():
            raise ValueError(f"{where}: image_size must be two positive numbers (height, width), got {size.tolist()}")
        values = {"image_id": np.frombuffer(str(image_id).encode("utf-8"), dtype=np.uint8),
                  "image_size": size.astype("<f4"), "boxes": boxes.astype("<f4")}
        if labels is None:
            labels = np.full((n,), -1, dtype=np.int32)
        labels = _as_array(labels, np.int64, "labels", where).reshape(-1)
        if labels.shape != (n,):
            raise ValueError(f"{where}: labels must have shape [{n}] (one per box), got {list(labels.shape)}")
        values["labels"] = labels.astype("<i4")
        if "features" in table.by_name:
            if features is None:
                raise ValueError(f"{where}: features are required by this store (feature_dim={self.feature_dim})")
            feats = _as_array(features, None, "features", where)
            if feats.shape != (n, self.feature_dim):
                raise ValueError(f"{where}: features must have shape [{n}, {self.feature_dim}], got {list(feats.shape)}")
            values["features"] = _to_float16(feats, "features", where)
        if "soft_labels" in table.by_name:
            if soft_labels is None:
                raise ValueError(f"{where}: soft_labels are required by this store")
            soft = _as_array(soft_labels, None, "soft_labels", where)
            if soft.shape != (n, self.num_soft_classes):
                raise ValueError(f"{where}: soft_labels must have shape [{n}, {self.num_soft_classes}], got {list(soft.shape)}")
            values["soft_labels"] = _to_float16(soft, "soft_labels", where)
        if "image" in table.by_name:
            if not image_bytes:
                raise ValueError(f"{where}: image bytes are required by this raw-image store")
            values["image"] = np.frombuffer(bytes(image_bytes), dtype=np.uint8)
        return table.append(values)

    def add_caption(self, image_index: int, text: str, token_ids, word_ids, source: str | None = None) -> int:
        """Appends a caption of region record ``image_index``; returns the caption's index."""
        where = source or f"caption {self.num_captions}"
        if not 0 <= int(image_index) < self.num_images:
            raise ValueError(f"{where}: image_index {image_index} out of range [0, {self.num_images})")
        ids = _as_array(token_ids, np.int64, "token_ids", where).reshape(-1)
        words = _as_array(word_ids, np.int64, "word_ids", where).reshape(-1)
        if ids.shape != words.shape:
            raise ValueError(f"{where}: token_ids and word_ids differ in length ({ids.size} vs {words.size})")
        return self.tables[CAPTIONS].append({
            "image_index": np.asarray(int(image_index), dtype="<i8"),
            "text": np.frombuffer(str(text).encode("utf-8"), dtype=np.uint8),
            "token_ids": ids.astype("<i4"), "word_ids": words.astype("<i4")})

    # ---- shards, checkpoints, finish -------------------------------------------------------------

    @property
    def checkpoint_due(self) -> bool:
        """True when the open region shard reached its size limit."""
        open_shard = self.tables[REGIONS].open
        return open_shard is not None and (open_shard.num_bytes >= self.shard_bytes
                                           or open_shard.num_records >= self.shard_records)

    def checkpoint(self, position) -> None:
        """Closes the open shards and records ``position`` (JSON: how far the source was read)."""
        for t in self.tables.values():
            t.close_shard()
        write_json_atomic(os.path.join(self.work_dir, PROGRESS_FILE),
                          {"settings": self.settings, "position": position,
                           "tables": {name: t.shards for name, t in self.tables.items()}})

    def close(self) -> str:
        """Finishes the store: closes shards, writes ``index.json``, renames into place."""
        for t in self.tables.values():
            t.close_shard()
        index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "attrs": self.attrs,
                 "feature_dim": self.feature_dim, "num_soft_classes": self.num_soft_classes,
                 "tables": {name: t.to_json() for name, t in self.tables.items()}}
        progress = os.path.join(self.work_dir, PROGRESS_FILE)
        if os.path.exists(progress):
            os.remove(progress)
        write_json_atomic(os.path.join(self.work_dir, INDEX_FILE), index)
        fsync_dir(self.work_dir)
        if os.path.exists(self.out_dir):
            if not self.overwrite:
                raise FileExistsError(f"out_dir: {self.out_dir} appeared while writing")
            shutil.rmtree(self.out_dir)
        os.replace(self.work_dir, self.out_dir)
        fsync_dir(os.path.dirname(self.out_dir))
        self._closed = True
        return self.out_dir

    def abort(self) -> None:
        """Deletes everything written (no partial store is left)."""
        for t in self.tables.values():
            if t.open is not None:
                t.open.abandon()
                t.open = None
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if not self._closed:
                self.close()
        elif not self._closed:
            # Interrupted (Ctrl-C): keep the checkpointed part for resume. Any error: leave nothing.
            if issubclass(exc_type, KeyboardInterrupt):
                for t in self.tables.values():
                    if t.open is not None:
                        t.open.abandon()
            else:
                self.abort()


def _to_float16(arr: np.ndarray, name: str, where: str) -> np.ndarray:
    """Casts to little-endian float16, refusing NaN, inf and values beyond the float16 range.

    One cheap pass: after the cast, NaN, inf and overflow all have an all-ones exponent
    (0x7C00), found on the integer view (numpy's float16 arithmetic is emulated and slow);
    the slower diagnosis runs only when something is wrong."""
    with np.errstate(over="ignore", invalid="ignore"):
        half = arr.astype("<f2")
    if half.size and ((half.view(np.uint16) & 0x7C00) == 0x7C00).any():
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: {name} contain NaN or inf")
        raise ValueError(f"{where}: {name} exceed the float16 range (|x| > {FP16_MAX})")
    return half


def _as_array(value, dtype, name: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {name} is not a numeric array ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {name} must be numeric, got dtype {arr.dtype}")
    return arr
