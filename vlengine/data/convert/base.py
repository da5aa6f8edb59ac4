"""What every source format yields, and helpers shared by the readers."""

from __future__ import annotations

import base64
import binascii
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np


class ConversionError(ValueError):
    """A source record is corrupt, truncated or mis-encoded; the message names file and record."""


@dataclass
class RegionRecord:
    """One image's regions as read from a source file (before validation by the store writer)."""
    image_id: str
    boxes: np.ndarray | None              # [N, 4] pixels (or normalised, with image_size (1, 1));
                                          # None: a further caption of an image already yielded
    image_size: tuple | None              # (height, width)
    features: np.ndarray | None           # [N, D]
    source: str                           # "file line 12", "db.lmdb key b'xyz'", ...: for error messages
    labels: np.ndarray | None = None      # [N] detector class
    soft_labels: np.ndarray | None = None  # [N, C]
    captions: list = field(default_factory=list)  # raw caption texts that come with the record
    image_bytes: bytes | None = None      # encoded image file (raw-image stores)


class Source:
    """A source format: iterates records from a position, says how to fingerprint itself."""

    name = "source"

    raw_images = False  # True: records carry image bytes and no features (a raw-image store)

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        raise NotImplementedError

    def total(self) -> int | None:
        return None

    def fingerprint(self) -> dict:
        raise NotImplementedError


def file_fingerprint(paths) -> list:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([os.path.abspath(p), st.st_size, int(st.st_mtime)])
    return out


def b64_array(value, dtype, where: str, name: str) -> np.ndarray:
    """Decodes a base64 field into a 1-d array, naming the field on failure."""
    if not isinstance(value, (str, bytes)):
        raise ConversionError(f"{where}: field {name!r} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConversionError(f"{where}: field {name!r} is not valid base64 ({e})") from None
    item = np.dtype(dtype).itemsize
    if len(raw) % item:
        raise ConversionError(f"{where}: field {name!r} decodes to {len(raw)} bytes, not a multiple of {item}")
    return np.frombuffer(raw, dtype=dtype)


def shaped(arr: np.ndarray, rows: int, cols: int | None, where: str, name: str) -> np.ndarray:
    """Reshapes to [rows] or [rows, cols] (cols None: inferred), naming the field when sizes disagree."""
    if cols is None:
        if rows == 0:
            return arr.reshape(0, 0) if arr.size == 0 else _bad(arr, rows, "?", where, name)
        if arr.size % rows:
            _bad(arr, rows, "?", where, name)
        return arr.reshape(rows, arr.size // rows)
    if cols == 0:
        if arr.size != rows:
            _bad(arr, rows, None, where, name)
        return arr
    if arr.size != rows * cols:
        _bad(arr, rows, cols, where, name)
    return arr.reshape(rows, cols)


def _bad(arr, rows, cols, where, name):
    shape = f"[{rows}]" if cols is None else f"[{rows}, {cols}]"
    raise ConversionError(f"{where}: field {name!r} has {arr.size} values, expected shape {shape} "
                          f"(truncated or mis-encoded record)")


def split_zip_path(path: str) -> tuple[str, str] | None:
    """``name.zip@/member`` -> (name.zip, member); None for a plain path (VL-BERT's convention)."""
    if ".zip@" not in path:
        return None
    archive, member = path.split(".zip@", 1)
    return archive + ".zip", member.lstrip("/")


class ZipReader:
    """Reads ``name.zip@/member`` paths, keeping a few archives open."""

    def __init__(self, base_dir: str = "", max_open: int = 8):
        self.base_dir, self.max_open = base_dir, max_open
        self._open: dict[str, zipfile.ZipFile] = {}

    def resolve(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.base_dir, path)

    def read(self, path: str, where: str) -> bytes:
        parts = split_zip_path(path)
        try:
            if parts is None:
                with open(self.resolve(path), "rb") as f:
                    return f.read()
            archive, member = parts
            archive = self.resolve(archive)
            zf = self._open.get(archive)
            if zf is None:
                if len(self._open) >= self.max_open:
                    self._open.pop(next(iter(self._open))).close()
                zf = self._open[archive] = zipfile.ZipFile(archive)
            return zf.read(member)
        except KeyError:
            raise ConversionError(f"{where}: {path}: no such member in the zip file") from None
        except (OSError, zipfile.BadZipFile) as e:
            raise ConversionError(f"{where}: cannot read {path} ({e})") from None

    def read_json(self, path: str, where: str):
        data = self.read(path, where)
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConversionError(f"{where}: {path} is not valid JSON ({e})") from None

    def close(self) -> None:
        for zf in self._open.values():
            zf.close()
        self._open.clear()
