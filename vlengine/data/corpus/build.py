"""Builds the embedded corpus: deterministic from a seed, written in the store format.

Layout of ``out_dir``::

    MANIFEST.json          seed, sizes, class/attribute vocabularies, sha256 of every file
    vocab.txt              WordPiece vocab (bert-base-uncased layout) from the grammar's words
    train/, heldout/       stores: per image region 0 = whole image, then one box per object;
                           float16 features [N, 2048] (features.py) AND the JPEG image
                           (raw-image mode) in the same records; 5 captions per image
    text/corpus.txt        text-only corpus: grammar sentences about unrendered scenes,
                           documents separated by blank lines (for corpus mixing)
    downstream/answers.json               VQA answer vocabulary
    downstream/vqa_{split}.jsonl          {"image_index", "question", "answer", "answer_id"}
    downstream/refexp_{split}.jsonl       {"image_index", "expression", "region", "box"}
    downstream/retrieval_{split}.json     {"image_indices", "caption_indices", "caption_image"}

Each image's content comes from its own generator seeded by (seed, split, index),
so the corpus is a pure function of the seed and the sizes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time

import numpy as np
from filelock import FileLock
from PIL import Image

from ..store import StoreWriter
from ..store.format import write_json_atomic
from ..text import load_tokenizer, write_vocab
from . import features as F
from . import grammar as G
from . import scenes as S

CORPUS_VERSION = 1
CAPTIONS_PER_IMAGE = 5
VQA_PER_IMAGE = 4
REFEXP_PER_IMAGE = 2
_SPLIT_CODES = {"train": 0, "heldout": 1, "text": 2}
CHUNK = 256  # images per feature projection / tokenizer batch


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index)])


def _jpeg(rgb: np.ndarray) -> bytes:
    # JPEG (not PNG): the pixel noise makes PNGs ~45 KB an image, JPEG q90 ~10 KB. Features
    # are computed from the exact rendered pixels, before encoding.
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90, subsampling=0)
    return buf.getvalue()


def _write_split(out_dir: str, split: str, seed: int, num_images: int, tokenizer, vocab_file: str,
                 answers: dict, downstream_dir: str) -> dict:
    writer = StoreWriter(os.path.join(out_dir, split), feature_dim=F.FEATURE_DIM, with_images=True,
                         vocab_file=vocab_file, shard_bytes=128 << 20,
                         attrs={"source": "embedded", "split": split, "seed": seed, "corpus_version": CORPUS_VERSION,
                                "num_classes": S.NUM_CLASSES, "box_convention": "inclusive pixels",
                                "region0": "whole image"})
    vqa_rows, ref_rows, caption_image = [], [], []
    with writer:
        for start in range(0, num_images, CHUNK):
            batch = []
            for i in range(start, min(num_images, start + CHUNK)):
                rng = _image_rng(seed, split, i)
                scene = S.sample_scene(rng)
                rgb = S.render(scene)
                boxes = np.asarray([S.whole_image_box()] + [o.box for o in scene.objects], dtype=np.float32)
                labels = np.asarray([-1] + [o.label for o in scene.objects], dtype=np.int32)
                batch.append((i, scene, rgb, boxes, labels, F.describe_boxes(rgb, boxes),
                              G.captions(scene.objects, rng, CAPTIONS_PER_IMAGE),
                              G.vqa(scene.objects, rng, VQA_PER_IMAGE), G.referring(scene.objects, rng, REFEXP_PER_IMAGE)))
            feats = F.project(np.concatenate([b[5] for b in batch]))
            encoded = tokenizer.encode_batch([c for b in batch for c in b[6]])
            row, k = 0, 0
            for i, scene, rgb, boxes, labels, desc, caps, qas, refs in batch:
                n = len(boxes)
                idx = writer.add_image(f"{split}-{i:06d}", boxes, (S.IMAGE_SIZE, S.IMAGE_SIZE),
                                       features=feats[row:row + n], labels=labels, image_bytes=_jpeg(rgb))
                row += n
                for text in caps:
                    writer.add_caption(idx, text, encoded[k].ids, encoded[k].word_ids)
                    caption_image.append(idx)
                    k += 1
                for q, a in qas:
                    vqa_rows.append({"image_index": idx, "question": q, "answer": a, "answer_id": answers[a]})
                for expr, obj in refs:
                    ref_rows.append({"image_index": idx, "expression": expr, "region": obj + 1,
                                     "box": [float(v) for v in boxes[obj + 1]]})
    for name, rows in (("vqa", vqa_rows), ("refexp", ref_rows)):
        with open(os.path.join(downstream_dir, f"{name}_{split}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    write_json_atomic(os.path.join(downstream_dir, f"retrieval_{split}.json"),
                      {"image_indices": list(range(num_images)),
                       "caption_indices": list(range(len(caption_image))), "caption_image": caption_image})
    return {"images": num_images, "captions": len(caption_image), "vqa": len(vqa_rows), "refexp": len(ref_rows)}


def _write_text_corpus(path: str, seed: int, num_documents: int) -> int:
    """Plain sentences about scenes that are never rendered: text with no image."""
    lines = 0
    with open(path, "w", encoding="utf-8") as f:
        for d in range(num_documents):
            rng = _image_rng(seed, "text", d)
            for _ in range(int(rng.integers(4, 9))):
                scene = S.sample_scene(rng)
                f.write(" . ".join(G.captions(scene.objects, rng, 2)) + " .\n")
                lines += 1
            f.write("\n")
    return lines


def _digest(root: str) -> dict:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if rel == "MANIFEST.json":
                continue
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
            out[rel] = h.hexdigest()
    return dict(sorted(out.items()))


def build_embedded_corpus(out_dir: str, seed: int = 0, num_train: int = 4000, num_heldout: int = 500,
                          num_text_documents: int | None = None, overwrite: bool = False, verbose: bool = False) -> str:
    """Generates the embedded corpus into ``out_dir`` (see the module docstring) and returns the path.

    Written to ``<out_dir>.partial`` and renamed when complete; the same
    arguments always give byte-identical files (MANIFEST.json lists their sha256).
    """
    if num_train < 1 or num_heldout < 1:
        raise ValueError(f"num_train and num_heldout must be >= 1, got {num_train}, {num_heldout}")
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"out_dir: {out_dir} already exists (pass overwrite=True to rebuild)")
    work = out_dir + ".partial"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "downstream"))
    os.makedirs(os.path.join(work, "text"))
    t0 = time.time()
    try:
        vocab_file = write_vocab(G.vocabulary_words(), os.path.join(work, "vocab.txt"))
        tokenizer = load_tokenizer(vocab_file)
        answer_list = sorted(set(G.COLOUR_NAMES) | set(G.SIZE_NAMES) | set(G.SHAPES) | set(G.COUNT_WORDS[1:]) | {"yes", "no"})
        answers = {a: i for i, a in enumerate(answer_list)}
        write_json_atomic(os.path.join(work, "downstream", "answers.json"), answer_list)
        counts = {}
        for split, n in (("train", num_train), ("heldout", num_heldout)):
            counts[split] = _write_split(work, split, seed, n, tokenizer, vocab_file, answers,
                                         os.path.join(work, "downstream"))
            if verbose:
                print(f"embedded corpus: {split} {counts[split]} ({time.time() - t0:.1f}s)", flush=True)
        docs = num_text_documents if num_text_documents is not None else max(1, num_train // 4)
        counts["text_lines"] = _write_text_corpus(os.path.join(work, "text", "corpus.txt"), seed, docs)
        manifest = {
            "name": "vlengine embedded corpus", "corpus_version": CORPUS_VERSION, "seed": seed,
            "counts": counts, "image_size": [S.IMAGE_SIZE, S.IMAGE_SIZE],
            "classes": S.NUM_CLASSES, "class_names": [S.class_name(c) for c in range(S.NUM_CLASSES)],
            "attribute_words": G.ATTRIBUTE_WORDS, "answers": answer_list,
            "features": {"dim": F.FEATURE_DIM, "projection_seed": F.PROJECTION_SEED,
                         "recipe": "vlengine.data.corpus.features (pixel statistics + fixed random projection)"},
            "files": _digest(work),
        }
        write_json_atomic(os.path.join(work, "MANIFEST.json"), manifest)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if verbose:
        print(f"embedded corpus: done in {time.time() - t0:.1f}s -> {out_dir}", flush=True)
    return out_dir


def default_corpus_dir(seed: int = 0) -> str:
    """Where :func:`ensure_embedded_corpus` keeps the corpus: ``$VLENGINE_DATA`` or ~/.cache/vlengine."""
    root = os.environ.get("VLENGINE_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "vlengine")
    return os.path.join(root, f"embedded-v{CORPUS_VERSION}-seed{seed}")


def ensure_embedded_corpus(out_dir: str | None = None, seed: int = 0, **sizes) -> str:
    """The corpus directory, built first if it does not exist yet (the default data of ``vlengine pretrain``).

    Processes that ask at once (the ranks of one run, two jobs on one machine) take turns on a lock
    file beside it: the first builds, the others find it built. Without the lock they all wrote into
    the same ``.partial`` folder and one died on the other's shard.
    """
    out_dir = os.path.abspath(out_dir or default_corpus_dir(seed))
    manifest = os.path.join(out_dir, "MANIFEST.json")
    if os.path.exists(manifest):
        return out_dir
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    # filelock (a torch dependency): an OS lock, released by the OS if its holder dies mid-build
    with FileLock(out_dir + ".lock"):
        if not os.path.exists(manifest):
            build_embedded_corpus(out_dir, seed=seed, overwrite=os.path.exists(out_dir), **sizes)
    return out_dir
