"""Karpathy's retrieval splits (``dataset_flickr30k.json``, ``dataset_coco.json``) -> an annotation set.

``{"images": [{"filename", "split" (train/val/test/restval), "sentences":
[{"raw", "tokens", "sentid"}], ...}]}``. One record per caption (training
samples captions; evaluation ranks them); the kept images, in file order, are
the extra ``images`` and each caption's ``image_index`` points into it, so
COCO's 1K folds (consecutive 1,000 images) are those of the field. Image ids are
the file names without extension (``COCO_val2014_000000391895``, ``1000092795``).
"""

from __future__ import annotations

import os
from typing import Iterator

from .annotation_base import AnnotationSource, ImageIdTemplate, load_json_file, require
from .base import ConversionError

SPLITS = ("train", "val", "test", "restval")


class KarpathySource(AnnotationSource):
    name = "karpathy"
    task = "retrieval"

    def __init__(self, path: str, splits, image_id_template: str | None = None, max_captions: int | None = None):
        self.path = path
        self.splits = tuple(splits)
        bad = [s for s in self.splits if s not in SPLITS]
        if not self.splits or bad:
            raise ValueError(f"karpathy splits must be among {SPLITS}, got {list(self.splits)}")
        if max_captions is not None and max_captions <= 0:
            raise ValueError(f"max captions per image must be positive, got {max_captions}")
        self.max_captions = max_captions
        self.image_id = ImageIdTemplate(image_id_template, ("image_id", "filename"))
        self._images: list[str] = []

    def paths(self) -> list[str]:
        return [self.path]

    def examples(self) -> Iterator[tuple[dict, str]]:
        data = load_json_file(self.path)
        images = require(data, "images", list, self.path)
        self._images = []
        seen: dict[str, int] = {}
        for i, img in enumerate(images):
            where = f"{self.path}: image {i}"
            split = require(img, "split", str, where)
            if split not in self.splits:
                continue
            filename = require(img, "filename", str, where)
            where = f"{where} ({filename})"
            image_id = self.image_id(where, image_id=os.path.splitext(filename)[0], filename=filename)
            if image_id in seen:
                raise ConversionError(f"{where}: image id {image_id!r} repeats image {seen[image_id]}")
            seen[image_id] = i
            index = len(self._images)
            self._images.append(image_id)
            sentences = require(img, "sentences", list, where)
            for j, sent in enumerate(sentences[:self.max_captions]):
                swhere = f"{where} sentence {j}"
                sentid = sent.get("sentid") if isinstance(sent, dict) else None
                yield {"id": str(sentid) if sentid is not None else f"{index}-{j}", "images": [image_id],
                       "text": require(sent, "raw", str, swhere), "image_index": index, "sentid": sentid}, swhere

    def extras(self) -> dict:
        return {"images": list(self._images)}
