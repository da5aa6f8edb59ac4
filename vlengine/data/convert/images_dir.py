"""Raw images + a boxes file -> a raw-image store (encoded image bytes, boxes, labels; no features).

The boxes file is JSON lines ``{"image": "relative/path.jpg", "boxes": [[x1, y1, x2, y2], ...],
"labels": [...] (optional), "image_id": "..." (optional, default the path)}``.
Images are decoded once (to check them and read their size) and stored as the
original file bytes. With ``whole_image_box`` (default) region 0 is the whole
image, VL-BERT's convention.
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import numpy as np

from ..images import decode_image
from .base import ConversionError, RegionRecord, Source, file_fingerprint


class ImageDirSource(Source):
    name = "images"
    raw_images = True

    def __init__(self, image_dir: str, boxes_file: str, whole_image_box: bool = True):
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"images: no such directory {image_dir}")
        self.image_dir, self.boxes_file, self.whole_image_box = image_dir, boxes_file, whole_image_box

    def fingerprint(self) -> dict:
        return {"format": self.name, "dir": os.path.abspath(self.image_dir), "boxes": file_fingerprint([self.boxes_file]),
                "whole": self.whole_image_box}

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        seen = 0
        with open(self.boxes_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                seen += 1
                if seen <= skip:
                    continue
                where = f"{self.boxes_file} line {lineno}"
                try:
                    row = json.loads(line)
                    rel = row["image"]
                    boxes = np.asarray(row["boxes"], dtype=np.float32).reshape(-1, 4)
                    labels = np.asarray(row.get("labels", [-1] * len(boxes)), dtype=np.int64).reshape(-1)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise ConversionError(f"{where}: expected {{\"image\", \"boxes\": [[x1, y1, x2, y2], ...]}} ({e})") from None
                path = os.path.join(self.image_dir, rel)
                try:
                    with open(path, "rb") as g:
                        data = g.read()
                except OSError as e:
                    raise ConversionError(f"{where}: cannot read image {path} ({e})") from None
                try:
                    w, h = decode_image(data, f"{where} ({path})").size
                except ValueError as e:
                    raise ConversionError(str(e)) from None
                if self.whole_image_box:
                    boxes = np.concatenate([np.array([[0, 0, w - 1, h - 1]], np.float32), boxes])
                    labels = np.concatenate([[-1], labels])
                yield RegionRecord(image_id=str(row.get("image_id", rel)), boxes=boxes, image_size=(h, w),
                                   features=None, labels=labels, source=f"{where} ({path})", image_bytes=data)
