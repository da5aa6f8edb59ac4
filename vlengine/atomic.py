"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

The content goes to a temporary file next to the target (same filesystem, so
the rename is atomic), is flushed and fsync'ed, renamed over the target with
``os.replace``, and the folder is fsync'ed so the rename itself survives a
power cut. If the writer fails, the temporary file is removed and the target is
untouched. A process killed mid-write leaves at most a ``<name>.tmp-<pid>``
file beside the target, never a truncated target.

This module is the ground floor: it imports nothing of vlengine, so every layer
(data stores, model checkpoints, training checkpoints, exports) can use it.

    with atomic_write(path, "wb") as f: f.write(...)
    with atomic_path(path) as tmp: save_file(tensors, tmp)   # libraries that take a file name
    write_text(path, text); write_bytes(path, data); write_json(path, obj, indent=1)
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Iterator


def _temp_name(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}"


def fsync_path(path: str) -> None:
    """fsync a file or a folder by name (a folder: makes a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make renames inside folder ``path`` durable; a no-op where the filesystem cannot fsync a folder."""
    try:
        fsync_path(path)
    except OSError:
        pass


def _publish(tmp: str, path: str) -> None:
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, _synced: bool = False) -> Iterator[str]:
    """Yield a temporary file name to write ``path`` through; on success it replaces ``path``."""
    path = os.fspath(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        if not _synced:
            fsync_path(tmp)
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing (``mode`` "w" or "wb"); on a clean exit it replaces ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, _synced=True) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj, **dump_kwargs) -> None:
    """``json.dump(obj, **dump_kwargs)`` into ``path``, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, **dump_kwargs)
