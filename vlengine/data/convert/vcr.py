"""VCR's official files -> an annotation set of task "vcr" (``VcrSource``) and a raw-image store
(``VcrImageSource``).

``{train,val,test}.jsonl``: one object per line with ``annot_id``, ``img_fn``, ``metadata_fn``,
``objects`` (class names, one per detection), ``question``, ``answer_choices`` [4] and
``rationale_choices`` [4] (token lists mixing words and lists of detection indices, e.g.
``["Is", [0, 2], "happy", "?"]``), and outside test ``answer_label`` and ``rationale_label``.
Per image, ``metadata_fn`` is JSON ``{"boxes": [[x1, y1, x2, y2, score]], "width", "height", ...}``.

Object mentions become words the model can read: a person is a gender-neutral name chosen from its
detection index alone (VL-BERT draws names from a counter that is never reset, so the same question
reads differently depending on loader order: not reproducible), any other object its class name, and
``[1, 2]`` reads "Name1 and Name2". Each text is stored as ``{"words": [...], "regions": [...]}``:
per word the detection index it mentions (-1 for plain words), so the tokenizer can give each of the
word's WordPieces that region (grounded text embedding). In the raw-image store region 0 is the whole
image and detection d is region d + 1 (VL-BERT's layout).
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import numpy as np

from ..images import decode_image
from .annotation_base import AnnotationSource, load_json_file, require
from .base import ConversionError, RegionRecord, Source, file_fingerprint

# R2C's gender-neutral names (its duplicate "Peyton" dropped): detection d of class person is NAMES[d % 14]
NAMES = ("Casey", "Riley", "Jessie", "Jackie", "Avery", "Jaime", "Peyton", "Kerry", "Jody", "Kendall",
         "Skyler", "Frankie", "Pat", "Quinn")
NUM_CHOICES = 4


def mention_words(index: int, objects: list) -> list[str]:
    """The words that stand for detection ``index``: a name for a person, else its class name's words."""
    label = objects[index]
    return [NAMES[index % len(NAMES)]] if label == "person" else label.split()


def render(tokens, objects: list, where: str) -> dict:
    """A VCR token list -> ``{"words", "regions"}`` (region -1 on words that mention nothing)."""
    if not isinstance(tokens, list) or not tokens:
        raise ConversionError(f"{where}: expected a non-empty token list, got {tokens!r:.80}")
    words, regions = [], []
    for tok in tokens:
        if isinstance(tok, str):
            words.append(tok)
            regions.append(-1)
            continue
        if (not isinstance(tok, list) or not tok
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in tok)):
            raise ConversionError(f"{where}: token {tok!r:.60} is neither a word nor a list of detection indices")
        bad = [i for i in tok if not 0 <= i < len(objects)]
        if bad:
            raise ConversionError(f"{where}: detection index {bad[0]} is out of range ({len(objects)} objects)")
        for k, index in enumerate(tok):
            if k:  # "A and B", "A , B and C": the joining words mention nothing
                words.append("and" if k == len(tok) - 1 else ",")
                regions.append(-1)
            piece = mention_words(index, objects)
            words += piece
            regions += [index] * len(piece)
    return {"words": words, "regions": regions}


def read_jsonl(path: str) -> Iterator[tuple[dict, str]]:
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                yield json.loads(line), where
            except json.JSONDecodeError as e:
                raise ConversionError(f"{where}: not valid JSON ({e})") from None


def image_id(img_fn: str) -> str:
    """The store's id of a VCR image: its path without extension (``lsmdc_.../xyz@2``)."""
    return os.path.splitext(img_fn)[0]


class VcrSource(AnnotationSource):
    name = "vcr"
    task = "vcr"

    def __init__(self, files):
        self.files = list(files)
        if not self.files:
            raise ValueError("--from vcr takes one or more {train,val,test}.jsonl files")

    def paths(self) -> list[str]:
        return self.files

    def examples(self) -> Iterator[tuple[dict, str]]:
        for path in self.files:
            for row, where in read_jsonl(path):
                annot_id = require(row, "annot_id", str, where)
                where = f"{where} (annot_id {annot_id})"
                objects = require(row, "objects", list, where)
                if not all(isinstance(o, str) and o for o in objects):
                    raise ConversionError(f"{where}: 'objects' must be a list of class names")
                img_fn = require(row, "img_fn", str, where)
                record = {"id": annot_id, "images": [image_id(img_fn)], "annot_id": annot_id, "img_fn": img_fn,
                          "metadata_fn": require(row, "metadata_fn", str, where), "objects": objects,
                          "question": render(require(row, "question", list, where), objects, f"{where}: question")}
                record["text"] = " ".join(record["question"]["words"])
                for field in ("answer_choices", "rationale_choices"):
                    choices = require(row, field, list, where)
                    if len(choices) != NUM_CHOICES:
                        raise ConversionError(f"{where}: {field!r} must hold {NUM_CHOICES} choices, got {len(choices)}")
                    record[field] = [render(c, objects, f"{where}: {field}[{i}]") for i, c in enumerate(choices)]
                for field in ("answer_label", "rationale_label"):
                    if field in row:  # the test split has no labels
                        label = require(row, field, int, where)
                        if not 0 <= label < NUM_CHOICES:
                            raise ConversionError(f"{where}: {field!r} must be 0..3, got {label}")
                        record[field] = label
                if ("answer_label" in record) != ("rationale_label" in record):
                    raise ConversionError(f"{where}: has one of answer_label / rationale_label but not the other")
                yield record, where


class VcrImageSource(Source):
    """VCR's images and metadata JSON -> raw-image store records (region 0 the whole image, then
    the detections in file order); each image once, named as ``VcrSource`` names it."""

    name = "vcr-images"
    raw_images = True

    def __init__(self, images_dir: str, files):
        if not os.path.isdir(images_dir):
            raise ValueError(f"--from vcr-images: no such directory {images_dir} (vcr1images)")
        self.images_dir, self.files = images_dir, list(files)
        if not self.files:
            raise ValueError("--from vcr-images takes VCR1IMAGES_DIR and one or more {train,val,test}.jsonl files")

    def fingerprint(self) -> dict:
        return {"format": self.name, "dir": os.path.abspath(self.images_dir), "files": file_fingerprint(self.files)}

    def _images(self) -> list[tuple[str, str, str]]:
        seen, out = set(), []
        for path in self.files:
            for row, where in read_jsonl(path):
                img_fn = require(row, "img_fn", str, where)
                if img_fn not in seen:
                    seen.add(img_fn)
                    out.append((img_fn, require(row, "metadata_fn", str, where), where))
        return out

    def total(self) -> int:
        return len(self._images())

    def records(self, skip: int = 0) -> Iterator[RegionRecord]:
        for img_fn, metadata_fn, where in self._images()[skip:]:
            meta_path = os.path.join(self.images_dir, metadata_fn)
            meta = load_json_file(meta_path)
            boxes = require(meta, "boxes", list, meta_path)
            try:
                boxes = np.asarray(boxes, dtype=np.float32).reshape(len(boxes), -1)
            except ValueError:
                raise ConversionError(f"{meta_path}: 'boxes' must be [[x1, y1, x2, y2, score], ...]") from None
            if len(boxes) and boxes.shape[1] not in (4, 5):
                raise ConversionError(f"{meta_path}: 'boxes' rows must be [x1, y1, x2, y2, score], got {boxes.shape[1]} numbers")
            path = os.path.join(self.images_dir, img_fn)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise ConversionError(f"{where}: cannot read image {path} ({e})") from None
            try:
                w, h = decode_image(data, f"{where} ({path})").size
            except ValueError as e:
                raise ConversionError(str(e)) from None
            width, height = require(meta, "width", int, meta_path), require(meta, "height", int, meta_path)
            if (width, height) != (w, h):
                raise ConversionError(f"{meta_path}: width x height {width}x{height} differs from the image's {w}x{h}")
            boxes = np.concatenate([np.array([[0, 0, w - 1, h - 1]], np.float32), boxes[:, :4].reshape(-1, 4)])
            yield RegionRecord(image_id=image_id(img_fn), boxes=boxes, image_size=(h, w), features=None,
                               labels=np.full(len(boxes), -1, np.int64), source=f"{where} ({path})", image_bytes=data)
