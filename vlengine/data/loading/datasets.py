"""Map-style datasets whose items are plain numpy dicts (collated into VLBatch by collate.py).

Items are requested by key ``(epoch, index)`` so that everything random about an
item (ITM negatives, image flips) is a pure function of (seed, epoch, index): a
resumed run and a fresh run see the same items, whatever the worker count.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..store import Store, open_store
from ..text import TextEncoder

ITM_STREAM, IMAGE_STREAM = 1, 2  # sub-streams of the per-item generator


def _item_rng(seed: int, epoch: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index), stream])


class CaptionImageDataset:
    """Caption-image pairs of a store, one item per caption.

    Args:
        store: a :class:`Store` or its path.
        max_text_len: cut captions to this many tokens ([SEP] kept last).
        max_regions: keep at most this many boxes per image (the first ones:
            region 0 is the whole image where the source has one).
        itm_negative_prob: with this probability an item's caption is replaced
            by a random caption of another image and ``itm_label`` = 0.
        seed: seeds ITM negatives and image transforms.
        image_transform: raw-image mode: an :class:`~vlengine.data.images.ImageTransform`;
            the record's encoded image is decoded, transformed and returned as
            ``image`` (boxes transformed with it).
        load_features: False skips reading region features (raw-image mode).
    """

    keyed_by_epoch = True  # items are requested as (epoch, index): see ResumableStream

    def __init__(self, store: Store | str, max_text_len: int | None = 64, max_regions: int | None = None,
                 itm_negative_prob: float = 0.0, seed: int = 0, image_transform=None, load_features: bool = True):
        self.store = open_store(store) if isinstance(store, (str, os.PathLike)) else store
        if not 0.0 <= itm_negative_prob <= 1.0:
            raise ValueError(f"itm_negative_prob must be in [0, 1], got {itm_negative_prob}")
        if max_regions is not None and max_regions < 1:
            raise ValueError(f"max_regions must be >= 1, got {max_regions}")
        if load_features and not self.store.has_features and image_transform is None:
            raise ValueError(f"store {self.store.path} has no region features: pass image_transform (raw-image mode)")
        if image_transform is not None and not self.store.has_images:
            raise ValueError(f"store {self.store.path} holds no images: raw-image mode needs a store written with images")
        if len(self.store.captions) == 0:
            raise ValueError(f"store {self.store.path} has no captions")
        self.max_text_len = max_text_len
        self.max_regions = max_regions
        self.itm_negative_prob = float(itm_negative_prob)
        self.seed = int(seed)
        self.image_transform = image_transform
        self.load_features = load_features and self.store.has_features
        self._left_right = _left_right_ids(self.store.vocab_file)

    def __len__(self) -> int:
        return len(self.store.captions)

    def lengths(self) -> np.ndarray:
        """Tokens + regions of every item (for token-budget batching)."""
        caps = self.store.captions
        text = caps.lengths("token_ids")
        if self.max_text_len is not None:
            text = np.minimum(text, self.max_text_len)
        regions = self.store.regions.lengths("boxes")[caps.column("image_index")]
        if self.max_regions is not None:
            regions = np.minimum(regions, self.max_regions)
        return (text + regions).astype(np.int64)

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"caption index {index} out of range [0, {n})")
        cap = self.store.caption(index)
        image_index = cap["image_index"]
        itm_label = 1
        if self.itm_negative_prob > 0:
            rng = _item_rng(self.seed, epoch, index, ITM_STREAM)
            if rng.random() < self.itm_negative_prob:
                # a random caption of another image (retry a few times for a different image)
                for _ in range(16):
                    other = int(rng.integers(n))
                    other_cap = self.store.caption(other)
                    if other_cap["image_index"] != image_index:
                        cap, itm_label = other_cap, 0
                        break
        ids = np.asarray(cap["token_ids"], dtype=np.int64)
        words = np.asarray(cap["word_ids"], dtype=np.int64)
        if self.max_text_len is not None and ids.shape[0] > self.max_text_len:
            ids = np.concatenate([ids[:self.max_text_len - 1], ids[-1:]])
            words = np.concatenate([words[:self.max_text_len - 1], [-1]])
        rec = self.store.image(image_index)
        item = store_region_item(self.store, image_index, self.max_regions, self.load_features, rec)
        item.update(input_ids=ids, word_ids=words, itm_label=itm_label, caption_index=index)
        if self.image_transform is not None:
            rng = _item_rng(self.seed, epoch, index, IMAGE_STREAM)
            flip = self.image_transform.draw_flip(rng)
            image, boxes, size = self.image_transform(bytes(rec["image"]), item["boxes"], rng, flip=flip,
                                                      source=f"store {self.store.path} image {image_index}")
            item.update(image=image, boxes=boxes, image_size=size)
            if flip and self._left_right is not None:
                # a mirrored image turns "left of" into "right of": keep the caption true
                left, right = self._left_right
                ids = item["input_ids"]
                item["input_ids"] = np.where(ids == left, right, np.where(ids == right, left, ids))
        return item


def store_region_item(store: Store, image_index: int, max_regions: int | None = None, load_features: bool = True,
                      record: dict | None = None) -> dict:
    """The region fields of store record ``image_index`` in the item layout ``collate_items`` pads:
    ``image_index``, ``image_size``, ``boxes``, ``labels`` and, where stored, ``features`` (unless
    ``load_features`` is False) and ``soft_labels``; the first ``max_regions`` boxes."""
    rec = record if record is not None else store.image(image_index)
    r = rec["num_boxes"] if max_regions is None else min(rec["num_boxes"], max_regions)
    item = {"image_index": image_index, "image_size": np.array(rec["image_size"], dtype=np.float32),
            "boxes": np.array(rec["boxes"][:r], dtype=np.float32), "labels": np.array(rec["labels"][:r], dtype=np.int64)}
    # features stay views of the mapped file: collate copies them once, into the batch
    if load_features and "features" in rec:
        item["features"] = rec["features"][:r]
    if "soft_labels" in rec:
        item["soft_labels"] = rec["soft_labels"][:r]
    return item


def _left_right_ids(vocab_file: str | None) -> tuple[int, int] | None:
    """Token ids of "left" and "right" in the store's vocab (swapped when an image is flipped)."""
    if vocab_file is None:
        return None
    with open(vocab_file, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    return (vocab["left"], vocab["right"]) if "left" in vocab and "right" in vocab else None


class TextChunkDataset:
    """A text-only corpus: plain-text files cut into chunks of ``chunk_len`` tokens.

    Every line is tokenized, the token stream of a file is cut into pieces of
    ``chunk_len - 2`` word pieces, each wrapped as ``[CLS] ... [SEP]`` (64 tokens
    by default, as VL-BERT's text-only batches). Word ids restart at 0 in every
    chunk. The token stream is held in memory as two int32 arrays (4 bytes a
    token, shared by forked workers); convert very large corpora to a store.
    """

    keyed_by_epoch = True  # accepts (epoch, index) keys like CaptionImageDataset (items do not depend on epoch)

    def __init__(self, paths: str | Sequence[str], tokenizer: TextEncoder, chunk_len: int = 64, batch_lines: int = 4096):
        if chunk_len < 3:
            raise ValueError(f"chunk_len must be >= 3, got {chunk_len}")
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not paths:
            raise ValueError("paths: no text files given")
        self.tokenizer, self.chunk_len = tokenizer, chunk_len
        ids, words, starts = [], [], []
        pos = 0
        body = chunk_len - 2
        for path in paths:
            file_ids, file_words, word_base = [], [], 0
            try:
                with open(path, encoding="utf-8") as f:
                    lines = []
                    for lineno, line in enumerate(f, 1):
                        if line.strip():
                            lines.append(line)
                        if len(lines) >= batch_lines:
                            word_base = self._encode(lines, file_ids, file_words, word_base)
                            lines = []
                    word_base = self._encode(lines, file_ids, file_words, word_base)
            except UnicodeDecodeError as e:
                raise ValueError(f"text corpus {path}: not valid UTF-8 near byte {e.start}") from None
            except FileNotFoundError:
                raise FileNotFoundError(f"text corpus: no such file {path}") from None
            if not file_ids:
                continue
            fi, fw = np.concatenate(file_ids), np.concatenate(file_words)
            for s in range(0, len(fi), body):
                starts.append((pos + s, min(body, len(fi) - s)))
            ids.append(fi)
            words.append(fw)
            pos += len(fi)
        if not starts:
            raise ValueError(f"text corpus {paths}: no text")
        self.ids = np.concatenate(ids).astype(np.int32)
        self.words = np.concatenate(words).astype(np.int64)
        self.chunks = np.asarray(starts, dtype=np.int64)

    def _encode(self, lines, out_ids, out_words, word_base) -> int:
        if not lines:
            return word_base
        for line in lines:
            enc = self.tokenizer.encode_plain(line)
            if enc.ids.size:
                out_ids.append(enc.ids.astype(np.int32))
                out_words.append(enc.word_ids + word_base)
                word_base += int(enc.word_ids.max()) + 1
        return word_base

    def __len__(self) -> int:
        return len(self.chunks)

    def lengths(self) -> np.ndarray:
        return self.chunks[:, 1] + 2

    def __getitem__(self, key) -> dict:
        _epoch, index = key if isinstance(key, tuple) else (0, key)
        start, n = (int(v) for v in self.chunks[index])
        body = self.ids[start:start + n].astype(np.int64)
        w = self.words[start:start + n]
        w = w - w[0]
        tok = self.tokenizer
        return {"input_ids": np.concatenate([[tok.cls_id], body, [tok.sep_id]]),
                "word_ids": np.concatenate([[-1], w, [-1]]), "text_only": True, "chunk_index": index}
