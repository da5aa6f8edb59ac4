"""What every annotation source (VQA, GQA, NLVR2, Karpathy splits) shares, and the runner
that writes one into an annotation set (``vlengine.data.annotations``).

A source yields ``(record, where)`` pairs: the record in the set's layout and a
description of where it came from ("v2_..._questions.json: question 17 (id
458752000)") that every error message starts with. The official files are
plain JSON (or JSON lines), except RefCOCO's refs(unc).p, a pickle read with an unpickler that
refuses every global (refcoco.py).
"""

from __future__ import annotations

import json
import string
from typing import Iterator

from tqdm import tqdm

from ..annotations import AnnotationWriter
from ..store import open_store
from .base import ConversionError, file_fingerprint


class AnnotationSource:
    """An official annotation format: examples in order, plus task extras and attrs."""

    name = "annotations"
    task = ""

    def examples(self) -> Iterator[tuple[dict, str]]:
        raise NotImplementedError

    def extras(self) -> dict:
        """Extra JSON objects to store beside the records (known once ``examples`` is exhausted)."""
        return {}

    def paths(self) -> list[str]:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        return {"format": self.name, "files": file_fingerprint(self.paths())}


def load_json_file(path: str):
    """A whole official JSON file, with errors naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConversionError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path}: not valid JSON ({e})") from None


def require(obj, key: str, kinds, where: str):
    """``obj[key]`` checked against ``kinds`` (a type or tuple), or a ConversionError naming it."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise ConversionError(f"{where}: missing {key!r}")
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    value = obj[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # JSON true is no id
        names = "/".join(k.__name__ for k in kinds)
        raise ConversionError(f"{where}: {key!r} must be {names}, got {value!r:.60}")
    return value


class ImageIdTemplate:
    """Maps a file's image reference to the region store's image id, e.g. VQA's ``image_id`` 42
    to LXMERT's ``COCO_val2014_000000000042`` with ``COCO_{data_subtype}_{image_id:012d}``."""

    def __init__(self, template: str | None, fields: tuple[str, ...]):
        self.template = template or "{image_id}"
        try:
            names = {f[1].split(".")[0].split("[")[0] for f in string.Formatter().parse(self.template) if f[1] is not None}
        except ValueError as e:
            raise ValueError(f"--image-id-template {self.template!r}: {e}") from None
        unknown = names - set(fields)
        if unknown or not names:
            raise ValueError(f"--image-id-template {self.template!r}: use the fields {{{'}, {'.join(fields)}}} "
                             f"(unknown: {sorted(unknown) or 'no field at all'})")

    def __call__(self, where: str, **fields) -> str:
        try:
            return self.template.format(**fields)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
            raise ConversionError(f"{where}: --image-id-template {self.template!r} does not fit {fields} ({e})") from None


def convert_annotations(source: AnnotationSource, out_dir: str, *, images: str | None = None, overwrite: bool = False,
                        progress: bool = True) -> str:
    """Writes ``source`` into an annotation set at ``out_dir``; returns its path.

    ``images``: a region store whose image ids every record must name (checked
    here, once, so a fine-tuning run cannot stop at a missing image hours in).
    """
    store = open_store(images) if images else None

    def check(image_id: str, where: str) -> None:
        if store is not None:
            try:
                store.index_of(image_id)
            except KeyError:
                raise ConversionError(f"{where}: image {image_id!r} is not in the store {store.path}") from None

    attrs = {"source_format": source.name, "converted_from": source.fingerprint(),
             "images_store": store.path if store is not None else None}
    with AnnotationWriter(out_dir, source.task, attrs=attrs, overwrite=overwrite) as writer:
        bar = tqdm(unit="ex", desc=f"convert {source.name}", disable=not progress, mininterval=1.0, dynamic_ncols=True)
        try:
            for record, where in source.examples():
                for image_id in record["images"]:
                    check(image_id, where)
                try:
                    writer.add(record, where)
                except ValueError as e:
                    raise ConversionError(str(e)) from None
                bar.update(1)
        finally:
            bar.close()
        for name, obj in source.extras().items():
            if name == "images":
                for i, image_id in enumerate(obj):
                    check(image_id, f"{source.paths()[0]}: image {i}")
            writer.add_extra(name, obj)
    return writer.out_dir
