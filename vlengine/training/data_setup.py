"""The data a pretraining config names: stores, tokenizer and the resumable loader.

`data.corpus: embedded` (the default) is the engine's own visually grounded
corpus, built on first use (vlengine.data.ensure_embedded_corpus); any other
value is a corpus folder of the same layout: train/ and heldout/ stores,
vocab.txt, optionally text/corpus.txt. `train`, `heldout`, `vocab`, `text_corpus`
override single paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

_DATA_KEYS = {"corpus", "corpus_seed", "train", "heldout", "vocab", "text_corpus", "text_ratio", "text_batch_size",
              "text_chunk_len", "itm_negative_prob", "max_regions", "max_text_len", "num_workers", "max_tokens"}


@dataclass
class DataPaths:
    root: str | None
    train: str
    heldout: str | None
    vocab: str
    text_corpus: str | None
    manifest: dict


def resolve_data(data: dict) -> DataPaths:
    """Paths of the corpus a config names (building the embedded corpus if needed)."""
    unknown = sorted(set(data) - _DATA_KEYS)
    if unknown:
        raise ValueError(f"unknown data setting(s) {unknown}; known: {sorted(_DATA_KEYS)}")
    corpus = data.get("corpus", "embedded")
    if corpus == "embedded":
        from vlengine.data import ensure_embedded_corpus
        root = ensure_embedded_corpus(seed=int(data.get("corpus_seed", 0)))
    else:
        root = corpus
    if root is not None and not os.path.isdir(root):
        raise ValueError(f"data.corpus: {root!r} is not a directory")
    manifest = {}
    if root and os.path.isfile(os.path.join(root, "MANIFEST.json")):
        with open(os.path.join(root, "MANIFEST.json")) as f:
            manifest = json.load(f)

    def pick(key: str, default: str | None) -> str | None:
        value = data.get(key, default)
        return value if value is None or os.path.isabs(value) or root is None else os.path.join(root, value)

    text_default = "text/corpus.txt" if root and os.path.isfile(os.path.join(root, "text", "corpus.txt")) else None
    paths = DataPaths(root=root, train=pick("train", "train"), heldout=pick("heldout", "heldout"),
                      vocab=pick("vocab", "vocab.txt"), text_corpus=pick("text_corpus", text_default),
                      manifest=manifest)
    for name in ("train", "vocab"):
        if not os.path.exists(getattr(paths, name)):
            raise ValueError(f"data.{name}: {getattr(paths, name)} does not exist")
    if paths.heldout and not os.path.exists(paths.heldout):
        paths.heldout = None
    return paths


def make_train_loader(data: dict, paths: DataPaths, micro_batch: int, seed: int, rank: int, world: int):
    """The resumable pretraining loader (vlengine.data) for this rank."""
    from vlengine.data import make_pretrain_loader

    text_ratio = float(data.get("text_ratio", 1.0))
    return make_pretrain_loader(
        paths.train, tokenizer=paths.vocab,
        text_corpus=paths.text_corpus if text_ratio > 0 else None, text_ratio=text_ratio,
        batch_size=micro_batch, max_tokens=data.get("max_tokens"),
        text_batch_size=data.get("text_batch_size"), text_chunk_len=int(data.get("text_chunk_len", 64)),
        max_text_len=data.get("max_text_len", 64), max_regions=data.get("max_regions"),
        itm_negative_prob=float(data.get("itm_negative_prob", 0.0)), rank=rank, world_size=world, seed=seed,
        num_workers=int(data.get("num_workers", 0)), drop_last=True)
