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

from .sections import DataSection


@dataclass
class DataPaths:
    root: str | None
    train: str
    heldout: str | None
    vocab: str
    text_corpus: str | None
    manifest: dict


def resolve_data(data: DataSection) -> DataPaths:
    """Paths of the corpus a config names (building the embedded corpus if needed)."""
    corpus = data.corpus
    if corpus == "embedded":
        from vlengine.data import ensure_embedded_corpus
        root = ensure_embedded_corpus(seed=data.corpus_seed)
    else:
        root = corpus
    if root is not None and not os.path.isdir(root):
        raise ValueError(f"data.corpus: {root!r} is not a directory")
    manifest = {}
    if root and os.path.isfile(os.path.join(root, "MANIFEST.json")):
        with open(os.path.join(root, "MANIFEST.json")) as f:
            manifest = json.load(f)

    def pick(key: str, default: str | None) -> str | None:
        value = getattr(data, key) or default
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


def make_train_loader(data: DataSection, paths: DataPaths, micro_batch: int, seed: int, rank: int, world: int,
                      questions=None):
    """The resumable pretraining loader (vlengine.data) for this rank; ``questions``: the image-QA
    pretraining set (a QuestionImageDataset, see qa_data.py) mixed in at data.qa_ratio."""
    from vlengine.data import make_pretrain_loader

    text_ratio = data.text_ratio
    return make_pretrain_loader(
        paths.train, tokenizer=paths.vocab,
        text_corpus=paths.text_corpus if text_ratio > 0 else None, text_ratio=text_ratio,
        batch_size=micro_batch, max_tokens=data.max_tokens,
        text_batch_size=data.text_batch_size, text_chunk_len=data.text_chunk_len,
        max_text_len=data.max_text_len, max_regions=data.max_regions,
        itm_negative_prob=data.itm_negative_prob, rank=rank, world_size=world, seed=seed,
        num_workers=data.num_workers, drop_last=True, image_transform=data.image_transform(),
        questions=questions, qa_ratio=data.qa_ratio, qa_batch_size=data.qa_batch_size)
