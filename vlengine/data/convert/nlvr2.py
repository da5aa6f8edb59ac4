"""NLVR2's official JSON lines -> an annotation set (two images per example).

Each line: ``{"identifier": "split-set-pair-sentence", "sentence", "label":
"True"/"False", "left_url", "right_url", ...}``. The images are named after the
identifier: ``{split}-{set}-{pair}-img0`` (left) and ``-img1`` (right), the
names of the released image files and of the feature files the field uses.
"""

from __future__ import annotations

import json
from typing import Iterator

from .annotation_base import AnnotationSource, ImageIdTemplate, require
from .base import ConversionError


def parse_label(value, where: str) -> bool:
    """"True"/"False" (any case, as the official script compares) or a JSON bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConversionError(f"{where}: 'label' must be \"True\" or \"False\", got {value!r:.40}")


class Nlvr2Source(AnnotationSource):
    name = "nlvr2"
    task = "nlvr2"

    def __init__(self, paths: list[str], image_id_template: str | None = None):
        self._paths = list(paths)
        self.image_id = ImageIdTemplate(image_id_template, ("image_id",))

    def paths(self) -> list[str]:
        return self._paths

    def examples(self) -> Iterator[tuple[dict, str]]:
        for path in self._paths:
            try:
                f = open(path, encoding="utf-8")
            except FileNotFoundError:
                raise ConversionError(f"{path}: no such file") from None
            with f:
                lineno = 0
                while True:
                    try:
                        line = f.readline()
                    except UnicodeDecodeError as e:
                        raise ConversionError(f"{path} line {lineno + 1}: not valid UTF-8 ({e.reason})") from None
                    if not line:
                        break
                    lineno += 1
                    if line.strip():
                        yield self._record(line, f"{path} line {lineno}")

    def _record(self, line: str, where: str) -> tuple[dict, str]:
        try:
            ex = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConversionError(f"{where}: not valid JSON ({e})") from None
        ident = require(ex, "identifier", str, where)
        where = f"{where} ({ident})"
        parts = ident.split("-")
        if len(parts) != 4 or not all(parts):
            raise ConversionError(f"{where}: identifier is not split-set-pair-sentence")
        stem = "-".join(parts[:3])
        record = {"id": ident, "identifier": ident,
                  "images": [self.image_id(where, image_id=f"{stem}-img{k}") for k in (0, 1)],
                  "text": require(ex, "sentence", str, where)}
        if "label" in ex:
            record["label"] = parse_label(ex["label"], where)
        return record, where
