"""Streams a source into a store: constant memory, progress bar, resumable, atomic.

The store is written under ``<out>.partial`` and renamed at the end (see
StoreWriter). Every closed region shard is a checkpoint recording how many
source records it holds; after a crash or Ctrl-C, running the same conversion
again skips those records (reading past them without decoding) and carries on.
A corrupt record stops the conversion with a ConversionError / ValueError that
names the file and record, and removes the partial output.
"""

from __future__ import annotations

import json
import os

import numpy as np
from tqdm import tqdm

from ..store import StoreWriter
from ..store.format import REGIONS
from ..text import load_tokenizer
from .base import ConversionError, Source, file_fingerprint


def _written_ids(writer: StoreWriter) -> dict[str, int]:
    """image id -> index for the shards a resumed writer kept (read back from disk)."""
    ids: dict[str, int] = {}
    for shard in writer.tables[REGIONS].shards:
        d = os.path.join(writer.work_dir, shard["dir"])
        data = np.fromfile(os.path.join(d, "image_id.bin"), dtype=np.uint8)
        offs = np.fromfile(os.path.join(d, "image_id.offsets.bin"), dtype="<i8")
        for a, b in zip(offs[:-1], offs[1:]):
            ids[bytes(data[a:b]).decode("utf-8")] = len(ids)
    return ids


def _caption_lines(path: str):
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConversionError(f"{where}: not valid JSON ({e})") from None
            image_id = row.get("image_id", row.get("img_id")) if isinstance(row, dict) else None
            text = row.get("caption", row.get("sent")) if isinstance(row, dict) else None
            if image_id is None or not isinstance(text, str):
                raise ConversionError(f"{where}: expected {{\"image_id\": ..., \"caption\": \"...\"}}")
            yield str(image_id), text, where


def convert(source: Source, out_dir: str, *, feature_dim: int | None = 2048, num_soft_classes: int | None = None,
            vocab_file: str | None = None, captions_file: str | None = None, max_text_len: int | None = None,
            shard_bytes: int = 256 << 20, overwrite: bool = False, resume: bool = True, progress: bool = True) -> str:
    """Converts ``source`` into a store at ``out_dir``; returns its path.

    Captions come with the records (VL-BERT) and/or from ``captions_file``
    (JSON lines ``{"image_id", "caption"}``); both need ``vocab_file``.
    """
    tokenizer = load_tokenizer(vocab_file) if vocab_file else None
    if captions_file and tokenizer is None:
        raise ValueError("captions need a vocab: pass vocab_file (--vocab)")
    fingerprint = {"source": source.fingerprint(), "feature_dim": feature_dim, "soft": num_soft_classes,
                   "captions": file_fingerprint([captions_file]) if captions_file else None,
                   "vocab": file_fingerprint([vocab_file]) if vocab_file else None}
    with_images = source.raw_images
    if with_images:
        feature_dim = None  # a raw-image store: the model computes region features from pixels
    writer = StoreWriter(out_dir, feature_dim=feature_dim, num_soft_classes=num_soft_classes, shard_bytes=shard_bytes,
                         with_images=with_images,
                         vocab_file=vocab_file, overwrite=overwrite, resume=resume, fingerprint=fingerprint,
                         attrs={"source_format": source.name, "converted_from": fingerprint["source"]})
    with writer:
        done = (writer.resume_position or {}).get("records", 0)
        ids = _written_ids(writer) if done else {}
        bar = tqdm(total=source.total(), initial=done, unit="img", desc=f"convert {source.name}",
                   disable=not progress, mininterval=1.0, dynamic_ncols=True)
        try:
            for rec in source.records(skip=done):
                index = ids.get(rec.image_id)
                if index is None:
                    if rec.boxes is None:  # a caption-only record of an image never written: a source bug
                        raise ConversionError(f"{rec.source}: refers to image {rec.image_id!r} that has no regions")
                    index = writer.add_image(rec.image_id, rec.boxes, rec.image_size, features=rec.features,
                                             labels=rec.labels, soft_labels=rec.soft_labels, image_bytes=rec.image_bytes,
                                             source=rec.source)
                    ids[rec.image_id] = index
                for text in rec.captions:
                    if tokenizer is None:
                        raise ValueError(f"{rec.source}: the source has captions: pass vocab_file (--vocab) to store them")
                    enc = tokenizer.encode(text, max_text_len)
                    writer.add_caption(index, text, enc.ids, enc.word_ids, source=rec.source)
                done += 1
                bar.update(1)
                if writer.checkpoint_due:
                    writer.checkpoint({"records": done})
            if captions_file:
                for image_id, text, where in _caption_lines(captions_file):
                    if image_id not in ids:
                        raise ConversionError(f"{where}: image id {image_id!r} is not in the converted features")
                    enc = tokenizer.encode(text, max_text_len)
                    writer.add_caption(ids[image_id], text, enc.ids, enc.word_ids, source=where)
        finally:
            bar.close()
    return writer.out_dir
