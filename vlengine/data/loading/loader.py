"""The pretraining loader: caption batches, optional text-only batches mixed in,
resumable mid-epoch through ``state_dict`` / ``load_state_dict``.

Both parts are :class:`~vlengine.data.loading.stream.ResumableStream` s (the
engine's one resumable stream); this module only builds them from a store and
mixes them. Iteration is by steps: epochs follow one another (each with its own
permutation) until ``epochs`` is reached, or forever when it is None. The state
counts batches *handed to the caller*, not batches prefetched by workers, so a
checkpoint taken after step s resumes exactly at step s + 1.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, Sequence

from vlengine.batch import VLBatch

from ..store import Store, open_store
from ..text import TextEncoder, load_tokenizer
from .collate import collate_items, concat_batches
from .datasets import CaptionImageDataset, TextChunkDataset
from .sampling import BatchPlan
from .stream import ResumableStream


class PretrainLoader:
    """Iterator of :class:`VLBatch` (``next(loader)`` step after step); see :func:`make_pretrain_loader`.

    The caption stream sets the epochs (and ends iteration when it has
    ``epochs``); the side streams (``mixed``: name -> (stream, ratio), e.g. the
    text-only corpus and image-QA questions) run endlessly beside it, each
    contributing ``ratio`` batches per caption batch."""

    def __init__(self, captions: ResumableStream, mixed: dict[str, tuple[ResumableStream, float]] | None = None,
                 batch_transform: Callable[[VLBatch], VLBatch] | None = None,
                 pad_id: int = 0, identity: dict | None = None):
        self.captions, self.mixed = captions, dict(mixed or {})
        for name, (_stream, ratio) in self.mixed.items():
            if ratio < 0:
                raise ValueError(f"{name}_ratio must be >= 0, got {ratio}")
        self.batch_transform, self.pad_id = batch_transform, pad_id
        self.identity = identity or {}
        self.step = 0

    def __len__(self) -> int:
        """Caption batches in the current epoch (of this rank)."""
        return len(self.captions)

    @property
    def epoch(self) -> int:
        return self.captions.epoch

    def _side_batches_for(self, step: int, ratio: float) -> int:
        # exactly round(ratio * steps) side batches over any run of steps, spread evenly
        return math.floor((step + 1) * ratio) - math.floor(step * ratio)

    def __iter__(self) -> "PretrainLoader":
        return self

    def __next__(self) -> VLBatch:
        batch = next(self.captions)  # StopIteration after `epochs` epochs
        for stream, ratio in self.mixed.values():
            for _ in range(self._side_batches_for(self.step, ratio)):
                batch = concat_batches(batch, next(stream), self.pad_id)
        self.step += 1
        if self.batch_transform is not None:
            batch = self.batch_transform(batch)
        return batch

    def state_dict(self) -> dict:
        """Position after the last batch handed out (JSON-able)."""
        state = {"step": self.step, "captions": self.captions.state_dict(), "identity": self.identity}
        state.update({name: stream.state_dict() for name, (stream, _ratio) in self.mixed.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("identity") != self.identity:
            raise ValueError(f"loader state is from a different setup ({state.get('identity')} != {self.identity}); "
                             "resuming would not reproduce the data order")
        self.step = int(state["step"])
        self.captions.load_state_dict(state["captions"])
        for name, (stream, _ratio) in self.mixed.items():
            if state.get(name) is None:
                raise ValueError(f"loader state has no {name} stream position")
            stream.load_state_dict(state[name])


def make_pretrain_loader(store: Store | str, *, tokenizer: TextEncoder | str | None = None,
                         text_corpus: str | Sequence[str] | None = None, text_ratio: float = 1.0,
                         batch_size: int | None = 32, max_tokens: int | None = None,
                         text_batch_size: int | None = None, text_chunk_len: int = 64,
                         max_text_len: int | None = 64, max_regions: int | None = None,
                         itm_negative_prob: float = 0.0, rank: int = 0, world_size: int = 1, seed: int = 0,
                         epochs: int | None = None, shuffle: bool = True, drop_last: bool = False,
                         num_workers: int = 0, pin_memory: bool = False, image_transform=None,
                         batch_transform: Callable[[VLBatch], VLBatch] | None = None,
                         questions=None, qa_ratio: float = 0.0, qa_batch_size: int | None = None) -> PretrainLoader:
    """A resumable loader of pretraining batches from a store.

    Args:
        store: store (or path) with regions and captions.
        tokenizer: encoder or vocab path for the text-only corpus (default: the store's vocab.txt).
        text_corpus: plain-text file(s) cut into ``text_chunk_len``-token chunks and mixed in:
            ``text_ratio`` text-only batches per caption batch (VL-BERT: 1.0), concatenated
            into the same VLBatch (rows flagged by ``text_only``).
        batch_size / max_tokens: rows per caption batch, or a token budget (tokens + regions)
            with length buckets (``batch_size`` then caps the rows).
        text_batch_size: rows per text-only batch (default: ``batch_size``).
        itm_negative_prob: share of captions swapped for a random one (``itm_label`` 0).
        rank / world_size / seed: disjoint per-rank shards, order fixed by (seed, epoch).
        epochs: stop after this many epochs (None: iterate forever, for step-based training).
        image_transform: raw-image mode (an :class:`~vlengine.data.images.ImageTransform`).
        batch_transform: applied to every final batch (e.g. a masking policy).
        questions / qa_ratio / qa_batch_size: image-QA pretraining (SemVLP): a
            :class:`~vlengine.data.loading.question_dataset.QuestionImageDataset` over the same
            store, ``qa_ratio`` question batches of ``qa_batch_size`` rows (default ``batch_size``)
            per caption batch, concatenated into the same VLBatch (rows carry ``qa_label``).
    """
    store = open_store(store) if isinstance(store, (str, os.PathLike)) else store
    ds = CaptionImageDataset(store, max_text_len=max_text_len, max_regions=max_regions,
                             itm_negative_prob=itm_negative_prob, seed=seed, image_transform=image_transform,
                             load_features=image_transform is None)
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if tokenizer is None and store.vocab_file is not None:
        tokenizer = load_tokenizer(store.vocab_file)
    pad_id = tokenizer.pad_id if tokenizer is not None else 0
    plan = BatchPlan(len(ds), batch_size=batch_size, max_tokens=max_tokens,
                     lengths=ds.lengths() if max_tokens is not None else None, rank=rank, world_size=world_size,
                     seed=seed, shuffle=shuffle, drop_last=drop_last)
    collate = functools.partial(collate_items, pad_id=pad_id)
    captions = ResumableStream(ds, plan, collate, epochs=epochs, num_workers=num_workers, pin_memory=pin_memory)
    mixed = {}
    if text_corpus is not None:
        if tokenizer is None:
            raise ValueError("text_corpus needs a tokenizer (or a store with vocab.txt)")
        tds = TextChunkDataset(text_corpus, tokenizer, chunk_len=text_chunk_len)
        tplan = BatchPlan(len(tds), batch_size=text_batch_size or batch_size or 32, rank=rank, world_size=world_size,
                          seed=seed + 1, shuffle=shuffle, drop_last=drop_last)
        mixed["text"] = (ResumableStream(tds, tplan, collate, num_workers=num_workers, pin_memory=pin_memory),
                         float(text_ratio))
    if questions is not None and qa_ratio > 0:
        qplan = BatchPlan(len(questions), batch_size=qa_batch_size or batch_size or 32, rank=rank,
                          world_size=world_size, seed=seed + 2, shuffle=shuffle, drop_last=drop_last)
        mixed["qa"] = (ResumableStream(questions, qplan, collate, num_workers=num_workers, pin_memory=pin_memory),
                       float(qa_ratio))
    identity = {"store": store.path, "captions": len(ds), "seed": seed, "rank": rank, "world_size": world_size,
                "batch_size": batch_size, "max_tokens": max_tokens,
                "text_ratio": text_ratio if "text" in mixed else None}
    if "qa" in mixed:   # only then: a checkpoint of a run without questions keeps resuming
        identity.update(questions=len(questions), qa_ratio=float(qa_ratio))
    return PretrainLoader(captions, mixed, batch_transform, pad_id, identity)


def embedded_pretrain_loader(corpus_dir: str | None = None, split: str = "train", seed: int = 0,
                             text_only: bool = True, **kwargs) -> PretrainLoader:
    """:func:`make_pretrain_loader` on the embedded corpus (built first if missing), with its
    text-only corpus mixed in one-for-one (VL-BERT's schedule) unless ``text_only=False``."""
    from ..corpus import ensure_embedded_corpus
    corpus_dir = ensure_embedded_corpus(corpus_dir, seed=kwargs.pop("corpus_seed", 0))
    if text_only:
        kwargs.setdefault("text_corpus", os.path.join(corpus_dir, "text", "corpus.txt"))
    return make_pretrain_loader(os.path.join(corpus_dir, split), seed=seed, **kwargs)
