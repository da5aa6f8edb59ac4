"""Read-only, memory-mapped access to an annotation set: ``aset[i]`` parses one line in O(1).

Opening checks every file's size against the index (and the offsets against
the records file), so a truncated file fails at open with its name;
``verify="full"`` also re-hashes the files. A set pickles as its path (loader
workers reopen the map and share the page cache).
"""

from __future__ import annotations

import json
import mmap
import os

import numpy as np

from ..store.format import read_json, sha256_file
from .format import ANNOTATION_FORMAT, ANNOTATION_VERSION, OFFSETS_FILE, RECORDS_FILE, AnnotationFormatError, extra_file


class AnnotationSet:
    """Records of one converted split: ``len``, ``[i]`` (a dict), ``index_of(id)``, ``extra(name)``."""

    def __init__(self, path: str, verify: str = "size"):
        if verify not in ("size", "full"):
            raise ValueError(f"verify must be 'size' or 'full', got {verify!r}")
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"annotation set {self.path}: no such directory")
        index_path = os.path.join(self.path, "index.json")
        index = read_json(index_path, f"annotation set {self.path}")
        if not isinstance(index, dict) or index.get("format") != ANNOTATION_FORMAT \
                or index.get("version") != ANNOTATION_VERSION:
            raise AnnotationFormatError(f"{index_path}: not a {ANNOTATION_FORMAT} v{ANNOTATION_VERSION} index")
        self.index, self.task, self.attrs = index, index.get("task"), index.get("attrs", {})
        files = index.get("files", {})
        for name, entry in files.items():
            if os.path.basename(name) != name:
                raise AnnotationFormatError(f"{index_path}: invalid file name {name!r}")
            full = os.path.join(self.path, name)
            if not os.path.exists(full):
                raise AnnotationFormatError(f"{full}: missing file")
            if os.path.getsize(full) != entry["bytes"]:
                raise AnnotationFormatError(f"{full}: size {os.path.getsize(full)} bytes, index says {entry['bytes']} "
                                            f"(truncated or overwritten file)")
            if verify == "full" and sha256_file(full) != entry["sha256"]:
                raise AnnotationFormatError(f"{full}: sha256 checksum mismatch (corrupt file)")
        n = int(index.get("num_records", -1))
        offsets_path = os.path.join(self.path, OFFSETS_FILE)
        if RECORDS_FILE not in files or OFFSETS_FILE not in files or files[OFFSETS_FILE]["bytes"] != 8 * (n + 1):
            raise AnnotationFormatError(f"{index_path}: records or offsets missing from the index, or the wrong size")
        self.offsets = np.fromfile(offsets_path, dtype="<i8")
        if self.offsets[0] != 0 or (np.diff(self.offsets) <= 0).any() or self.offsets[-1] != files[RECORDS_FILE]["bytes"]:
            raise AnnotationFormatError(f"{offsets_path}: offsets do not describe {RECORDS_FILE} (corrupt file)")
        self._mm = None
        self._ids: dict[str, int] | None = None

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def _map(self):
        if self._mm is None:
            with open(os.path.join(self.path, RECORDS_FILE), "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mm

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"annotation set {self.path}: record {i} out of range [0, {len(self)})")
        i %= len(self)
        line = self._map()[int(self.offsets[i]):int(self.offsets[i + 1])]
        try:
            return json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AnnotationFormatError(f"{os.path.join(self.path, RECORDS_FILE)}: record {i} is not valid JSON "
                                        f"({e}); run verify") from None

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def index_of(self, record_id: str) -> int:
        """Position of the record with ``id`` (a dict built on first use)."""
        if self._ids is None:
            self._ids = {r["id"]: i for i, r in enumerate(self)}
        try:
            return self._ids[record_id]
        except KeyError:
            raise KeyError(f"annotation set {self.path}: no record with id {record_id!r}") from None

    def image_indices(self, store) -> np.ndarray:
        """int64 [n, k]: each record's images as record indices of a region ``store`` (k = 2 for
        NLVR2, else 1), resolved once so a dataset reads both sides in O(1) per example."""
        width = max((len(r["images"]) for r in self), default=1)
        out = np.full((len(self), width), -1, dtype=np.int64)
        for i, r in enumerate(self):
            for j, image_id in enumerate(r["images"]):
                try:
                    out[i, j] = store.index_of(image_id)
                except KeyError:
                    raise KeyError(f"annotation set {self.path}: record {i} ({r['id']}): image {image_id!r} "
                                   f"is not in the store {store.path}") from None
        return out

    def extra(self, name: str):
        """A task extra (e.g. ``images`` of a retrieval set)."""
        if name not in self.index.get("extras", []):
            raise KeyError(f"annotation set {self.path} has no extra {name!r} (has {self.index.get('extras', [])})")
        return read_json(os.path.join(self.path, extra_file(name)), f"annotation set {self.path}")


def open_annotations(path: str, verify: str = "size") -> AnnotationSet:
    return AnnotationSet(path, verify=verify)
