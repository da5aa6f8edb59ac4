"""Writes an annotation set under ``<out>.partial`` and renames it into place on close,
so a failed conversion never leaves something at ``<out>`` that looks like a set."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np

from ...atomic import fsync_dir
from ..store.format import sha256_file, write_json_atomic
from .format import ANNOTATION_FORMAT, ANNOTATION_VERSION, OFFSETS_FILE, RECORDS_FILE, TASKS, extra_file


class AnnotationWriter:
    """``add(record)`` per example (dicts with ``id``, ``images``, ``text``), ``add_extra(name, obj)``,
    then :meth:`close` (or use it as a context manager: an error removes the partial output)."""

    def __init__(self, out_dir: str, task: str, attrs: dict | None = None, overwrite: bool = False):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.out_dir = os.path.abspath(out_dir)
        if os.path.exists(self.out_dir) and not overwrite:
            raise FileExistsError(f"out_dir: {self.out_dir} already exists (pass overwrite=True to replace it)")
        self.task, self.attrs, self.overwrite = task, dict(attrs or {}), overwrite
        self.work_dir = self.out_dir + ".partial"
        shutil.rmtree(self.work_dir, ignore_errors=True)
        os.makedirs(self.work_dir)
        self._records = open(os.path.join(self.work_dir, RECORDS_FILE), "wb")
        self._hash = hashlib.sha256()
        self._offsets = [0]
        self._ids: set[str] = set()
        self._extras: list[str] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def add(self, record: dict, source: str | None = None) -> int:
        """Appends one example; ``source`` ("questions.json: question 17") names it in errors."""
        where = source or f"record {len(self)}"
        rid = record.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValueError(f"{where}: the record needs a non-empty string 'id'")
        if rid in self._ids:
            raise ValueError(f"{where}: duplicate id {rid!r}")
        images = record.get("images")
        if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
            raise ValueError(f"{where}: 'images' must be a non-empty list of image id strings")
        if not isinstance(record.get("text"), str):
            raise ValueError(f"{where}: 'text' must be a string")
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        self._records.write(line)
        self._hash.update(line)
        self._offsets.append(self._offsets[-1] + len(line))
        self._ids.add(rid)
        return len(self) - 1

    def add_extra(self, name: str, obj) -> None:
        """A task extra stored as ``<name>.json`` (e.g. ``images``: retrieval's ordered image ids)."""
        if not name.isidentifier() or name == "index" or name in self._extras:
            raise ValueError(f"extra name {name!r} is not a fresh identifier")
        write_json_atomic(os.path.join(self.work_dir, extra_file(name)), obj)
        self._extras.append(name)

    def close(self) -> str:
        self._records.flush()
        os.fsync(self._records.fileno())
        self._records.close()
        offsets = np.asarray(self._offsets, dtype="<i8")
        with open(os.path.join(self.work_dir, OFFSETS_FILE), "wb") as f:
            f.write(offsets.tobytes())
            f.flush()
            os.fsync(f.fileno())
        files = {RECORDS_FILE: {"bytes": int(self._offsets[-1]), "sha256": self._hash.hexdigest()},
                 OFFSETS_FILE: {"bytes": offsets.nbytes, "sha256": hashlib.sha256(offsets.tobytes()).hexdigest()}}
        for name in self._extras:
            path = os.path.join(self.work_dir, extra_file(name))
            files[extra_file(name)] = {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}
        write_json_atomic(os.path.join(self.work_dir, "index.json"),
                          {"format": ANNOTATION_FORMAT, "version": ANNOTATION_VERSION, "task": self.task,
                           "num_records": len(self), "attrs": self.attrs, "extras": self._extras, "files": files})
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
        if not self._records.closed:
            self._records.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> "AnnotationWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()
