"""Read-only, memory-mapped access to a vlengine store.

Opening checks every file's byte size against the index and the offsets
(cheap: no data is read), so a truncated file fails at open with its name;
:meth:`Store.verify` (or ``open_store(..., verify="full")``) also re-hashes every
file against its sha256. Arrays are read-only views of ``mmap``-ed files: nothing is copied until
a loader copies one record into a tensor, and loader workers share the page
cache, so host memory stays flat as workers are added. A store pickles as its
path only (DataLoader workers reopen the maps themselves).
"""

from __future__ import annotations

import bisect
import mmap
import os

import numpy as np

from .format import (CAPTIONS, FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, REGIONS, VOCAB_FILE,
                     Column, StoreFormatError, read_json, sha256_file)


def _map(path: str, dtype: str, count: int, shape: tuple) -> np.ndarray:
    """A read-only array over the file's pages (mmap + frombuffer: a plain ndarray, whose
    slicing costs a fraction of np.memmap's, which re-wraps every slice in Python)."""
    if count == 0:
        return np.zeros((0, *shape), dtype=dtype)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mm, dtype=dtype, count=count * int(np.prod(shape, dtype=np.int64))).reshape(count, *shape)


def _plain_name(name, where: str) -> str:
    """A file or directory name from the index must stay inside the store (no paths, no '..')."""
    if not isinstance(name, str) or not name or name in (".", "..") or os.path.basename(name) != name or "\\" in name:
        raise StoreFormatError(f"{where}: invalid file name {name!r} in the index")
    return name


class _Shard:
    def __init__(self, root: str, table: str, entry: dict, columns: dict[str, Column]):
        self.dir = os.path.join(root, _plain_name(entry.get("dir"), os.path.join(root, "index.json")))
        self.table = table
        self.num_records = int(entry["num_records"])
        self.entry = entry
        self.columns = columns
        self.data: dict[str, np.ndarray] = {}
        self.offsets: dict[str, np.ndarray] = {}
        for name, col in columns.items():
            files = entry["files"].get(name)
            if files is None:
                raise StoreFormatError(f"{self.dir}: column {name!r} missing from the shard manifest")
            if col.ragged:
                opath = self._checked_path(files["offsets"])
                offs = _map(opath, "<i8", self.num_records + 1, ())
                if offs.shape[0] and offs[0] != 0 or (np.diff(offs) < 0).any():
                    raise StoreFormatError(f"{opath}: offsets are not non-decreasing from 0 (corrupt file)")
                rows = int(offs[-1]) if offs.shape[0] else 0
                self.offsets[name] = offs
            else:
                rows = self.num_records
            dpath = self._checked_path(files, expected=rows * col.row_bytes)
            self.data[name] = _map(dpath, col.dtype, rows, col.row_shape)

    def _checked_path(self, f: dict, expected: int | None = None) -> str:
        path = os.path.join(self.dir, _plain_name(f.get("file"), self.dir))
        if not os.path.exists(path):
            raise StoreFormatError(f"{path}: missing shard file")
        size = os.path.getsize(path)
        if size != f["bytes"]:
            raise StoreFormatError(f"{path}: size {size} bytes, index says {f['bytes']} (truncated or overwritten file)")
        if expected is not None and expected != size:
            raise StoreFormatError(f"{path}: size {size} bytes does not match its offsets ({expected} expected)")
        return path

    def verify(self) -> None:
        for name in self.columns:
            files = self.entry["files"][name]
            for f in (files, files.get("offsets")):
                if f is None:
                    continue
                path = os.path.join(self.dir, f["file"])
                if sha256_file(path) != f["sha256"]:
                    raise StoreFormatError(f"{path}: sha256 checksum mismatch (corrupt file)")

    def get(self, local: int, column: str) -> np.ndarray:
        if column in self.offsets:
            offs = self.offsets[column]
            return self.data[column][int(offs[local]):int(offs[local + 1])]
        return self.data[column][local]


class Table:
    """One table of a store: ``len(table)`` records, ``table.get(i, column)`` in O(1)."""

    def __init__(self, root: str, name: str, spec: dict):
        self.name = name
        self.columns = {n: Column.from_json(n, c) for n, c in spec["columns"].items()}
        self.shards = [_Shard(root, name, entry, self.columns) for entry in spec["shards"]]
        self.starts = [0]
        for s in self.shards:
            self.starts.append(self.starts[-1] + s.num_records)
        if self.starts[-1] != spec["num_records"]:
            raise StoreFormatError(f"{root}: table {name!r} has {self.starts[-1]} records in its shards, "
                                   f"index says {spec['num_records']}")

    def __len__(self) -> int:
        return self.starts[-1]

    def has(self, column: str) -> bool:
        return column in self.columns

    def locate(self, index: int) -> tuple[_Shard, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"table {self.name!r}: record {index} out of range [0, {len(self)})")
        if index < 0:
            index += len(self)
        s = bisect.bisect_right(self.starts, index) - 1
        return self.shards[s], index - self.starts[s]

    def get(self, index: int, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"table {self.name!r} has no column {column!r} (has {sorted(self.columns)})")
        shard, local = self.locate(index)
        return shard.get(local, column)

    def count(self, index: int, column: str) -> int:
        """Rows of a ragged column in record ``index`` (e.g. the box count) without reading them."""
        shard, local = self.locate(index)
        offs = shard.offsets[column]
        return int(offs[local + 1] - offs[local])

    def lengths(self, column: str) -> np.ndarray:
        """Rows per record of a ragged column, for all records (e.g. caption lengths for bucketing)."""
        return np.concatenate([np.diff(s.offsets[column]) for s in self.shards]) if self.shards else np.zeros(0, np.int64)

    def column(self, column: str) -> np.ndarray:
        """A fixed column for all records (concatenated copy; small columns only)."""
        if self.columns[column].ragged:
            raise ValueError(f"column {column!r} is ragged; use get() per record")
        if not self.shards:
            col = self.columns[column]
            return np.zeros((0, *col.row_shape), dtype=col.dtype)
        return np.concatenate([np.asarray(s.data[column]) for s in self.shards])


class Store:
    """A store opened with :func:`open_store`. Tables ``regions`` and ``captions``."""

    def __init__(self, path: str, verify: str = "size"):
        if verify not in ("size", "full"):
            raise ValueError(f"verify must be 'size' or 'full', got {verify!r}")
        self.path = os.path.abspath(path)
        self._verify_mode = verify
        if not os.path.isdir(self.path):
            hint = " (an unfinished write left only a .partial directory)" if os.path.isdir(self.path + ".partial") else ""
            raise FileNotFoundError(f"store {self.path}: no such directory{hint}")
        index = read_json(os.path.join(self.path, INDEX_FILE), f"store {self.path}")
        if index.get("format") != FORMAT_NAME or index.get("version") != FORMAT_VERSION:
            raise StoreFormatError(f"{os.path.join(self.path, INDEX_FILE)}: not a {FORMAT_NAME} v{FORMAT_VERSION} index")
        self.index = index
        self.attrs = index.get("attrs", {})
        self.feature_dim = index.get("feature_dim")
        self.num_soft_classes = index.get("num_soft_classes")
        try:
            self.regions = Table(self.path, REGIONS, index["tables"][REGIONS])
            self.captions = Table(self.path, CAPTIONS, index["tables"][CAPTIONS])
        except (KeyError, TypeError, AttributeError) as e:
            raise StoreFormatError(f"{os.path.join(self.path, INDEX_FILE)}: malformed index ({type(e).__name__}: {e})") from None
        self._ids: dict[str, int] | None = None
        if verify == "full":
            self.verify()

    def __getstate__(self):
        return {"path": self.path, "verify": "size"}

    def __setstate__(self, state):
        self.__init__(state["path"], state["verify"])

    def verify(self) -> None:
        """Re-hashes every shard file against the index; raises StoreFormatError naming the file."""
        for table in (self.regions, self.captions):
            for shard in table.shards:
                shard.verify()

    @property
    def vocab_file(self) -> str | None:
        path = os.path.join(self.path, VOCAB_FILE)
        return path if os.path.exists(path) else None

    @property
    def has_features(self) -> bool:
        return self.regions.has("features")

    @property
    def has_images(self) -> bool:
        return self.regions.has("image")

    def __len__(self) -> int:
        return len(self.regions)

    def image_id(self, index: int) -> str:
        return bytes(self.regions.get(index, "image_id")).decode("utf-8")

    def index_of(self, image_id: str) -> int:
        """Record index of ``image_id`` (a dict built once on first use)."""
        if self._ids is None:
            self._ids = {self.image_id(i): i for i in range(len(self.regions))}
        try:
            return self._ids[image_id]
        except KeyError:
            raise KeyError(f"store {self.path}: no image with id {image_id!r}") from None

    def image(self, index: int) -> dict:
        """All columns of region record ``index`` as numpy views (memory-mapped, not copied)."""
        shard, local = self.regions.locate(index)
        out = {name: shard.get(local, name) for name in self.regions.columns}
        out["image_id"] = bytes(out["image_id"]).decode("utf-8")
        out["num_boxes"] = out["boxes"].shape[0]
        return out

    def caption(self, index: int) -> dict:
        """Caption ``index``: image_index, text, token_ids, word_ids."""
        shard, local = self.captions.locate(index)
        return {"image_index": int(shard.get(local, "image_index")),
                "text": bytes(shard.get(local, "text")).decode("utf-8"),
                "token_ids": shard.get(local, "token_ids"), "word_ids": shard.get(local, "word_ids")}


def open_store(path: str, verify: str = "size") -> Store:
    """Opens a store directory. ``verify="size"`` (default) checks every file's size
    and offsets; ``"full"`` also checks every file's sha256 (reads all data once)."""
    return Store(path, verify=verify)
