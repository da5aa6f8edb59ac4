"""VL-BERT's Conceptual Captions layout: JSON lines of {"image", "caption", "frcnn"}.

``frcnn`` is a path (``train_frcnn.zip@/train_frcnn/xyz.json`` style, relative to
the annotation file's directory) or an inline dict; the frcnn JSON holds
``image_id``, ``image_h``, ``image_w``, ``num_boxes`` and base64 float32 arrays
``boxes`` [N, 4], ``classes`` [N, C] (detector scores, e.g. C = 1601) and
``features`` [N, D]. The annotation file itself may sit inside a zip
(``ann.zip@/train.json``). Several captions of one image share its frcnn record:
the image is stored once and every caption points at it.
"""

from __future__ import annotations

import io
import json
import os
from typing import Iterator

import numpy as np

from .base import ConversionError, RegionRecord, Source, ZipReader, b64_array, file_fingerprint, shaped, split_zip_path


class VlbertSource(Source):
    name = "vlbert-zip"

    def __init__(self, annotation_paths: list[str], feature_dim: int = 2048, num_classes: int | None = 1601):
        self.paths = list(annotation_paths)
        self.feature_dim, self.num_classes = feature_dim, num_classes

    def fingerprint(self) -> dict:
        files = [split_zip_path(p)[0] if split_zip_path(p) else p for p in self.paths]
        return {"format": self.name, "files": file_fingerprint(files), "members": self.paths}

    def _lines(self, path: str) -> Iterator[tuple[int, str]]:
        parts = split_zip_path(path)
        if parts is None:
            f = open(path, "r", encoding="utf-8")
        else:
            f = io.TextIOWrapper(io.BytesIO(ZipReader().read(path, path)), encoding="utf-8")
        with f:
            lineno = 0
            while True:
                try:
                    line = f.readline()
                except UnicodeDecodeError as e:
                    raise ConversionError(f"{path} line {lineno + 1}: not valid UTF-8 ({e.reason})") from None
                if not line:
                    return
                lineno += 1
                if line.strip():
                    yield lineno, line

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        """One record per annotation line; a line whose frcnn was already seen yields a
        record with ``features=None`` and only its caption (the runner links it)."""
        seen = 0
        # frcnn path -> image id of records already yielded: later captions of the same image
        # are yielded without decoding its features again (one entry per image, a few bytes each)
        known: dict[str, str] = {}
        for path in self.paths:
            parts = split_zip_path(path)
            base = os.path.dirname(parts[0] if parts else path)
            zips = ZipReader(base)
            try:
                for lineno, line in self._lines(path):
                    seen += 1
                    if seen <= skip:
                        continue
                    where = f"{path} line {lineno}"
                    try:
                        ann = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ConversionError(f"{where}: not valid JSON ({e})") from None
                    if not isinstance(ann, dict) or "frcnn" not in ann:
                        raise ConversionError(f"{where}: expected an object with an 'frcnn' field")
                    frcnn = ann["frcnn"]
                    key = frcnn if isinstance(frcnn, str) else None
                    if key is not None and key in known:
                        yield RegionRecord(image_id=known[key], boxes=None, image_size=None, features=None,
                                           source=f"{where} ({key})", captions=_captions(ann))
                        continue
                    if isinstance(frcnn, str):
                        where = f"{where} ({frcnn})"
                        frcnn = zips.read_json(frcnn, where)
                    if not isinstance(frcnn, dict):
                        raise ConversionError(f"{where}: frcnn record is not a JSON object")
                    rec = self._record(frcnn, ann, key, where)
                    if key is not None:
                        known[key] = rec.image_id
                    yield rec
            finally:
                zips.close()

    def _record(self, frcnn: dict, ann: dict, key: str | None, where: str) -> RegionRecord:
        try:
            n, h, w = int(frcnn["num_boxes"]), int(frcnn["image_h"]), int(frcnn["image_w"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConversionError(f"{where}: frcnn record lacks a valid {e} field") from None
        if n < 0:
            raise ConversionError(f"{where}: num_boxes is negative ({n})")
        image_id = str(frcnn.get("image_id", key or ann.get("image")))
        boxes = shaped(b64_array(frcnn.get("boxes"), np.float32, where, "boxes"), n, 4, where, "boxes")
        feats = shaped(b64_array(frcnn.get("features"), np.float32, where, "features"), n, self.feature_dim, where, "features")
        soft = labels = None
        if self.num_classes:
            soft = shaped(b64_array(frcnn.get("classes"), np.float32, where, "classes"), n, self.num_classes, where, "classes")
            labels = soft.argmax(axis=1) if n else np.zeros(0, np.int64)
        return RegionRecord(image_id=image_id, boxes=boxes, image_size=(h, w), features=feats, labels=labels,
                            soft_labels=soft, source=where, captions=_captions(ann))


def _captions(ann: dict) -> list[str]:
    caption = ann.get("caption")
    if isinstance(caption, list):  # some releases store the caption pre-split into words
        caption = " ".join(str(c) for c in caption)
    return [caption] if caption else []
