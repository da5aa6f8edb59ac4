"""RefCOCO / RefCOCO+ / RefCOCOg (the refer toolkit's files) -> an annotation set of task "refcoco".

``refs(unc).p``: a Python pickle of a list of ``{"ref_id", "ann_id", "image_id", "category_id",
"split" (train/val/testA/testB), "sentences": [{"sent", "raw", "tokens", "sent_id"}]}``. It holds only
dicts, lists, strings and numbers, so it is read with an unpickler that refuses every global: a file
that names one (the way a pickle runs code) is rejected before anything in it is called.
``instances.json``: COCO's ``{"images": [{"id", "file_name"}], "annotations": [{"id", "image_id",
"bbox" [x, y, w, h], "category_id"}]}``.

One record per expression (sentence) of the kept splits: ``id`` (the sent_id), ``text`` (``sent``),
``images`` (the store's id of the image), ``ref_id``, ``ann_id``, ``image_id``, ``sent_id``, ``split``,
``category_id`` and ``bbox`` (the referred object's COCO box). Candidate boxes are the region store's
boxes of the image (the ground-truth-box track, or a store built from detections), unless
``proposals`` names a detections JSON (``[{"image_id", "box" or "bbox": [x, y, w, h]}]``): then the
extra ``proposals`` ({store image id: [[x, y, w, h], ...]}) lists each kept image's detected boxes,
and the dataset scores exactly the store regions with those boxes (the detected-box track).
"""

from __future__ import annotations

import os
import pickle
from typing import Iterator

from .annotation_base import AnnotationSource, ImageIdTemplate, load_json_file, require
from .base import ConversionError

SPLITS = ("train", "val", "testA", "testB", "test")   # "test": RefCOCOg's umd split


class RefusingUnpickler(pickle.Unpickler):
    """Loads plain data only: every global (class, function, extension code) is refused, so no
    object of the file's choosing is ever constructed or called."""

    def __init__(self, file, path: str):
        # refs(unc).p was written by Python 2: its str objects are the sentences' UTF-8 bytes
        super().__init__(file, encoding="utf-8", errors="strict")
        self.path = path

    def find_class(self, module: str, name: str):
        raise ConversionError(f"{self.path}: refusing to load: the pickle names the global {module}.{name} "
                              "(refs files hold only dicts, lists, strings and numbers; nothing of it was run)")


def load_refs(path: str) -> list:
    """The refs list of a refer-toolkit pickle, read with ``RefusingUnpickler``."""
    try:
        with open(path, "rb") as f:
            refs = RefusingUnpickler(f, path).load()
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, ConversionError):
            raise
        raise ConversionError(f"{path}: not a readable refs pickle ({type(e).__name__}: {e})") from None
    if not isinstance(refs, list):
        raise ConversionError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def _bbox(value, where: str) -> list[float]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ConversionError(f"{where}: box must be [x, y, w, h] numbers, got {value!r:.80}")
    if value[2] < 0 or value[3] < 0:
        raise ConversionError(f"{where}: box {value} has a negative width or height")
    return [float(v) for v in value]


class RefcocoSource(AnnotationSource):
    name = "refcoco"
    task = "refcoco"

    def __init__(self, refs: str, instances: str, splits, image_id_template: str | None = None,
                 proposals: str | None = None):
        self.refs, self.instances, self.proposals = refs, instances, proposals
        self.splits = tuple(splits)
        bad = [s for s in self.splits if s not in SPLITS]
        if not self.splits or bad:
            raise ValueError(f"refcoco splits must be among {SPLITS}, got {list(self.splits)}")
        # file_stem: COCO's file_name without extension (COCO_train2014_000000581857), as many stores name images
        self.image_id = ImageIdTemplate(image_id_template, ("image_id", "file_stem"))
        self._store_ids: dict = {}      # COCO image id -> the store's image id, of the kept records

    def paths(self) -> list[str]:
        return [self.refs, self.instances] + ([self.proposals] if self.proposals else [])

    def _instances(self) -> tuple[dict, dict]:
        data = load_json_file(self.instances)
        boxes, stems = {}, {}
        for i, ann in enumerate(require(data, "annotations", list, self.instances)):
            where = f"{self.instances}: annotation {i}"
            boxes[require(ann, "id", (int, str), where)] = (_bbox(ann.get("bbox"), where),
                                                           require(ann, "image_id", (int, str), where))
        for i, image in enumerate(data.get("images", [])):
            where = f"{self.instances}: image {i}"
            file_name = require(image, "file_name", str, where)
            stems[require(image, "id", (int, str), where)] = os.path.splitext(file_name)[0]
        return boxes, stems

    def examples(self) -> Iterator[tuple[dict, str]]:
        refs = load_refs(self.refs)
        boxes, stems = self._instances()
        self._store_ids = {}
        for i, ref in enumerate(refs):
            where = f"{self.refs}: ref {i}"
            split = require(ref, "split", str, where)
            if split not in self.splits:
                continue
            ref_id = require(ref, "ref_id", (int, str), where)
            where = f"{where} (ref_id {ref_id})"
            ann_id = require(ref, "ann_id", (int, str), where)
            image_id = require(ref, "image_id", (int, str), where)
            if ann_id not in boxes:
                raise ConversionError(f"{where}: ann_id {ann_id} is not in {self.instances}")
            bbox, ann_image = boxes[ann_id]
            if ann_image != image_id:
                raise ConversionError(f"{where}: image_id {image_id} differs from annotation {ann_id}'s "
                                      f"({ann_image}) in {self.instances}")
            store_id = self.image_id(where, image_id=image_id, file_stem=stems.get(image_id, str(image_id)))
            self._store_ids[image_id] = store_id
            for j, sent in enumerate(require(ref, "sentences", list, where)):
                swhere = f"{where} sentence {j}"
                sent_id = require(sent, "sent_id", (int, str), swhere)
                yield {"id": str(sent_id), "images": [store_id], "text": require(sent, "sent", str, swhere),
                       "ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "sent_id": sent_id,
                       "split": split, "category_id": ref.get("category_id"), "bbox": bbox}, swhere

    def extras(self) -> dict:
        if not self.proposals:
            return {}
        detections = load_json_file(self.proposals)
        if not isinstance(detections, list):
            raise ConversionError(f"{self.proposals}: expected a JSON list of detections "
                                  f"{{image_id, box [x, y, w, h]}}, got {type(detections).__name__}")
        out: dict[str, list] = {store_id: [] for store_id in self._store_ids.values()}
        for i, det in enumerate(detections):
            where = f"{self.proposals}: detection {i}"
            image_id = require(det, "image_id", (int, str), where)
            if image_id in self._store_ids:
                key = "box" if isinstance(det, dict) and "box" in det else "bbox"
                out[self._store_ids[image_id]].append(_bbox(det.get(key), where))
        empty = [coco_id for coco_id, store_id in self._store_ids.items() if not out[store_id]]
        if empty:
            raise ConversionError(f"{self.proposals}: no detection for image {empty[0]} (and {len(empty) - 1} more) "
                                  "that the kept expressions refer to")
        return {"proposals": out}
