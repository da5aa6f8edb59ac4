"""vlengine.data: feature stores, converters, text, loading and the embedded corpus.

Entry points (imported lazily, so ``import vlengine.data`` stays light):

Embedded corpus (the default data of ``vlengine pretrain``)::

    from vlengine.data import build_embedded_corpus, ensure_embedded_corpus
    root = ensure_embedded_corpus()            # ~/.cache/vlengine/... (or $VLENGINE_DATA), built once, ~30 s
    build_embedded_corpus("/tmp/corpus", seed=0, num_train=4000, num_heldout=500)
    # root/train, root/heldout: stores (features + JPEG images + captions); root/vocab.txt;
    # root/text/corpus.txt: text-only corpus; root/downstream/: VQA, referring expressions, retrieval;
    # root/MANIFEST.json: counts, class names, ATTRIBUTE_WORDS (colour/size/shape), file sha256s

Store (sharded, memory-mapped; see vlengine/data/store/format.py)::

    store = open_store(root + "/train")        # verify="full" also checks sha256 of every file
    store.image(i)   -> {"features" [N,2048] f16, "boxes" [N,4], "labels" [N], "image_size" (h, w), ...}
    store.caption(j) -> {"image_index", "text", "token_ids", "word_ids"}
    StoreWriter(out_dir, ...)                  # add_image / add_caption / close (atomic)

Text::

    tok = load_tokenizer(root + "/vocab.txt")  # WordPiece (HF tokenizers), bert-base-uncased layout
    tok.encode("a red circle") -> Encoded(ids, word_ids); tok.mask_id, tok.pad_id, tok.vocab_size
    train_vocab(texts, path) / write_vocab(words, path)

Loading (yields vlengine.batch.VLBatch)::

    loader = make_pretrain_loader(root + "/train", text_corpus=root + "/text/corpus.txt", text_ratio=1.0,
                                  batch_size=32, itm_negative_prob=0.0, rank=0, world_size=1, seed=0)
    for batch in loader: ...                   # endless unless epochs=N; loader.state_dict() to resume
    embedded_pretrain_loader(batch_size=32)    # the same on the embedded corpus
    ResumableStream(dataset, BatchPlan(len(dataset), batch_size=8, rank=0, world_size=1, seed=0), collate_fn)
                                               # the one resumable stream under it, for any map-style dataset

Raw-image mode: ``ImageTransform`` (vlengine.data.images) passed as ``image_transform=``.
Converters: ``vlengine data convert --from {tsv,vlbert-zip,lmdb,npz} SRC OUT`` (vlengine.data.convert).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_embedded_corpus": "vlengine.data.corpus",
    "ensure_embedded_corpus": "vlengine.data.corpus",
    "default_corpus_dir": "vlengine.data.corpus",
    "ATTRIBUTE_WORDS": "vlengine.data.corpus",
    "open_store": "vlengine.data.store",
    "Store": "vlengine.data.store",
    "StoreWriter": "vlengine.data.store",
    "StoreFormatError": "vlengine.data.store",
    "load_tokenizer": "vlengine.data.text",
    "train_vocab": "vlengine.data.text",
    "write_vocab": "vlengine.data.text",
    "TextEncoder": "vlengine.data.text",
    "make_pretrain_loader": "vlengine.data.loading",
    "embedded_pretrain_loader": "vlengine.data.loading",
    "PretrainLoader": "vlengine.data.loading",
    "ResumableStream": "vlengine.data.loading",
    "BatchPlan": "vlengine.data.loading",
    "CaptionImageDataset": "vlengine.data.loading",
    "QuestionImageDataset": "vlengine.data.loading",
    "TextChunkDataset": "vlengine.data.loading",
    "collate_items": "vlengine.data.loading",
    "concat_batches": "vlengine.data.loading",
    "ImageTransform": "vlengine.data.images",
    "VLBatch": "vlengine.batch",
    "IGNORE_INDEX": "vlengine.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vlengine.data' has no attribute {name!r}")
