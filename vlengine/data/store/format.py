"""On-disk layout of a vlengine store (no pickle: raw little-endian arrays + JSON).

A store is a directory::

    index.json                    tables, shards, per-file byte size and sha256
    vocab.txt                     optional: the vocab the caption token ids use
    <table>-<shard:05d>/          one directory per shard of a table
        shard.json                the shard's own manifest (same content as in index.json)
        <column>.bin              records' values, concatenated, C order
        <column>.offsets.bin      ragged columns only: int64 [n + 1] row starts

Tables: ``regions`` (one record per image) and ``captions`` (one per caption,
pointing at a region record by global index). A column is *fixed* (every record
has the same shape) or *ragged* (records differ in their first dimension, e.g.
features [num_boxes, 2048]); ragged columns are read through their offsets, so
record i of any table is found in O(1): shard by binary search over a handful of
shard starts, then two offsets. Every file is memory-mapped read-only, so loader
workers share the page cache instead of each holding a copy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ...atomic import write_json

FORMAT_NAME = "vlengine-store"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
SHARD_MANIFEST = "shard.json"
VOCAB_FILE = "vocab.txt"
HASH_CHUNK = 1 << 22

REGIONS = "regions"
CAPTIONS = "captions"


@dataclass(frozen=True)
class Column:
    """A column: dtype, per-row shape, ragged (variable rows per record) or fixed."""
    name: str
    dtype: str          # numpy dtype string, little-endian: "<f2", "<f4", "<i4", "<i8", "|u1"
    row_shape: tuple    # shape of one row (a ragged record holds k rows; a fixed record holds one)
    ragged: bool

    def to_json(self) -> dict:
        return {"dtype": self.dtype, "row_shape": list(self.row_shape), "ragged": self.ragged}

    @staticmethod
    def from_json(name: str, spec: dict) -> "Column":
        return Column(name, spec["dtype"], tuple(spec["row_shape"]), bool(spec["ragged"]))

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.row_shape, dtype=np.int64)))


def region_columns(feature_dim: int | None = 2048, num_soft_classes: int | None = None,
                   with_images: bool = False) -> list[Column]:
    """Columns of the ``regions`` table. ``feature_dim=None``: raw-image store without features."""
    cols = [
        Column("image_id", "|u1", (), True),            # UTF-8 bytes of the source's image id
        Column("image_size", "<f4", (2,), False),       # (height, width) in pixels
        Column("boxes", "<f4", (4,), True),             # (x1, y1, x2, y2) pixels, [num_boxes, 4]
        Column("labels", "<i4", (), True),              # detector class per box, -1 unknown
    ]
    if feature_dim is not None:
        cols.append(Column("features", "<f2", (int(feature_dim),), True))
    if num_soft_classes:
        cols.append(Column("soft_labels", "<f2", (int(num_soft_classes),), True))
    if with_images:
        cols.append(Column("image", "|u1", (), True))   # encoded image file bytes (PNG/JPEG)
    return cols


def caption_columns() -> list[Column]:
    """Columns of the ``captions`` table."""
    return [
        Column("image_index", "<i8", (), False),        # global record index in ``regions``
        Column("text", "|u1", (), True),                # UTF-8 raw caption
        Column("token_ids", "<i4", (), True),           # WordPiece ids incl. [CLS]/[SEP] (store's vocab.txt)
        Column("word_ids", "<i4", (), True),            # whole-word index per token, -1 on specials
    ]


def data_file(column: str) -> str:
    return f"{column}.bin"


def offsets_file(column: str) -> str:
    return f"{column}.offsets.bin"


def shard_dir_name(table: str, shard: int) -> str:
    return f"{table}-{shard:05d}"


class StoreFormatError(RuntimeError):
    """A store file is missing, truncated, corrupt or inconsistent (message names the file/record)."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: str, obj) -> None:
    """Writes JSON in the store's layout (indent 1, sorted keys), atomically (vlengine.atomic)."""
    write_json(path, obj, indent=1, sort_keys=True)


def read_json(path: str, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise StoreFormatError(f"{what}: missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreFormatError(f"{what}: {path} is not valid JSON ({e})") from None
