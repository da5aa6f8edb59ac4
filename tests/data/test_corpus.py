"""The embedded corpus: determinism, grounding of captions, downstream sets, and features
from which a linear probe reads colour, shape and size."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from filelock import FileLock

from vlengine.data.corpus import build_embedded_corpus
from vlengine.data.corpus import features as F
from vlengine.data.corpus import scenes as S
from vlengine.data.store import open_store
from vlengine.data.text import load_tokenizer


def _attrs(label):
    shape, rest = divmod(int(label), len(S.COLOURS) * len(S.SIZES))
    colour, size = divmod(rest, len(S.SIZES))
    return shape, colour, size


def test_same_seed_same_bytes_other_seed_differs(tmp_path, small_corpus):
    a = build_embedded_corpus(str(tmp_path / "a"), seed=0, num_train=240, num_heldout=60, num_text_documents=30)
    b = build_embedded_corpus(str(tmp_path / "b"), seed=1, num_train=240, num_heldout=60, num_text_documents=30)
    ma, mb, m0 = (json.load(open(os.path.join(p, "MANIFEST.json"))) for p in (a, b, small_corpus))
    assert ma["files"] == m0["files"]                      # byte-identical for one seed
    differing = [f for f in ma["files"] if ma["files"][f] != mb["files"].get(f)]
    assert any("features.bin" in f for f in differing) and any("text.bin" in f for f in differing)
    assert ma["files"]["vocab.txt"] == mb["files"]["vocab.txt"]  # the vocab comes from the grammar alone


def test_structure_and_grounding(small_corpus):
    store = open_store(os.path.join(small_corpus, "train"), verify="full")
    tok = load_tokenizer(os.path.join(small_corpus, "vocab.txt"))
    assert len(store) == 240 and len(store.captions) == 240 * 5 and store.has_features and store.has_images
    overlapping = 0
    colour_words = set(S.COLOUR_NAMES)
    for i in range(len(store)):
        rec = store.image(i)
        boxes, labels = rec["boxes"], rec["labels"]
        assert 3 <= len(boxes) <= 7                      # region 0 + 2..6 objects
        np.testing.assert_array_equal(boxes[0], [0, 0, 127, 127])
        assert labels[0] == -1 and (labels[1:] >= 0).all()
        assert (boxes >= 0).all() and (boxes <= 127).all()
        shapes = [_attrs(l)[0] for l in labels[1:]]
        assert len(set(shapes)) == len(shapes)          # a shape names one object
        b = boxes[1:]
        ix = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        iy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        overlapping += int(((ix > 0) & (iy > 0)).sum() > len(b))
    for j in range(0, len(store.captions), 7):
        cap = store.caption(j)
        rec = store.image(cap["image_index"])
        present = {(S.COLOUR_NAMES[_attrs(l)[1]], S.SHAPES[_attrs(l)[0]]) for l in rec["labels"][1:]}
        words = cap["text"].split()
        for k in range(len(words) - 1):                  # every "colour shape" in a caption is in the image
            if words[k] in colour_words and words[k + 1] in S.SHAPES:
                assert (words[k], words[k + 1]) in present, (cap["text"], present)
        assert tok.encode(cap["text"]).ids.tolist() == cap["token_ids"].tolist()
        assert tok.unk_id not in cap["token_ids"]
    assert overlapping > 0.2 * len(store)                 # IoU masking has neighbours to mask


def test_downstream_sets(small_corpus):
    ds = os.path.join(small_corpus, "downstream")
    answers = json.load(open(os.path.join(ds, "answers.json")))
    held = open_store(os.path.join(small_corpus, "heldout"))
    vqa = [json.loads(l) for l in open(os.path.join(ds, "vqa_heldout.jsonl"))]
    assert len(vqa) >= 3 * len(held)
    for q in vqa:
        assert answers[q["answer_id"]] == q["answer"]
        labels = held.image(q["image_index"])["labels"][1:]
        if q["question"].startswith("what colour is the "):
            shape = q["question"].split()[4]
            [colour] = [S.COLOUR_NAMES[_attrs(l)[1]] for l in labels if S.SHAPES[_attrs(l)[0]] == shape]
            assert q["answer"] == colour
        if q["question"].startswith("how many"):
            assert q["answer"] == ["zero", "one", "two", "three", "four", "five", "six"][len(labels)]
    for r in (json.loads(l) for l in open(os.path.join(ds, "refexp_heldout.jsonl"))):
        rec = held.image(r["image_index"])
        assert r["box"] == rec["boxes"][r["region"]].tolist() and r["region"] >= 1
        assert S.SHAPES[_attrs(rec["labels"][r["region"]])[0]] in r["expression"].split()[:3]
    ret = json.load(open(os.path.join(ds, "retrieval_heldout.json")))
    assert len(ret["caption_image"]) == len(held.captions)
    assert all(held.caption(c)["image_index"] == i for c, i in enumerate(ret["caption_image"]))
    text = open(os.path.join(small_corpus, "text", "corpus.txt")).read()
    assert len(text.split()) > 1000 and "\n\n" in text


def _probe_accuracy(x_train, y_train, x_test, y_test, classes, ridge=1.0):
    """A linear probe fitted in closed form: ridge regression onto one-hot targets (dual form)."""
    x_train, x_test = x_train.double(), x_test.double()
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    xtr, xte = (x_train - mean) / std, (x_test - mean) / std
    targets = torch.nn.functional.one_hot(y_train, classes).double()
    gram = xtr @ xtr.T + ridge * xtr.shape[1] * 1e-3 * torch.eye(len(xtr), dtype=torch.float64)
    weights = xtr.T @ torch.linalg.solve(gram, targets - targets.mean(0))
    return ((xte @ weights).argmax(1) == y_test).double().mean().item()


def test_linear_probe_reads_colour_shape_and_size(small_corpus):
    def boxes_of(split):
        s = open_store(os.path.join(small_corpus, split))
        feats, attrs = [], []
        for i in range(len(s)):
            rec = s.image(i)
            feats.append(np.asarray(rec["features"][1:], np.float32))
            attrs += [_attrs(l) for l in rec["labels"][1:]]
        return torch.from_numpy(np.concatenate(feats)), torch.tensor(attrs)
    xtr, ytr = boxes_of("train")
    xte, yte = boxes_of("heldout")
    for k, (name, classes) in enumerate((("shape", len(S.SHAPES)), ("colour", len(S.COLOURS)), ("size", len(S.SIZES)))):
        acc = _probe_accuracy(xtr, ytr[:, k], xte, yte[:, k], classes)
        assert acc > 0.85, (name, acc)


def test_features_depend_on_pixels_only():
    rng = np.random.default_rng(3)
    scene = S.sample_scene(rng)
    img = S.render(scene)
    boxes = np.asarray([S.whole_image_box()] + [o.box for o in scene.objects], np.float32)
    f1 = F.region_features(img, boxes)
    assert f1.shape == (len(boxes), 2048) and f1.dtype == np.float16 and np.isfinite(f1).all()
    np.testing.assert_array_equal(f1, F.region_features(img.copy(), boxes))  # deterministic
    recoloured = img.copy()
    x1, y1, x2, y2 = scene.objects[0].box
    recoloured[y1:y2 + 1, x1:x2 + 1] = 255 - recoloured[y1:y2 + 1, x1:x2 + 1]
    assert not np.array_equal(F.region_features(recoloured, boxes)[1], f1[1])  # pixels change -> features change
    with pytest.raises(ValueError, match="uint8"):
        F.region_features(img.astype(np.float32), boxes)


def test_colour_words_are_not_guessable_from_text(small_corpus):
    """The text prior of a colour word is near uniform: only the image tells which colour."""
    store = open_store(os.path.join(small_corpus, "train"))
    counts = {}
    for j in range(len(store.captions)):
        for w in store.caption(j)["text"].split():
            if w in S.COLOURS:
                counts[w] = counts.get(w, 0) + 1
    total = sum(counts.values())
    assert len(counts) == len(S.COLOURS) and max(counts.values()) / total < 0.25


def test_ensure_embedded_corpus_builds_once(tmp_path, monkeypatch):
    from vlengine.data.corpus import default_corpus_dir, ensure_embedded_corpus
    monkeypatch.setenv("VLENGINE_DATA", str(tmp_path))
    root = ensure_embedded_corpus(seed=2, num_train=8, num_heldout=2, num_text_documents=2)
    assert root == default_corpus_dir(2) and root.startswith(str(tmp_path))
    stamp = os.path.getmtime(os.path.join(root, "MANIFEST.json"))
    assert ensure_embedded_corpus(seed=2, num_train=8, num_heldout=2) == root
    assert os.path.getmtime(os.path.join(root, "MANIFEST.json")) == stamp  # not rebuilt
    with pytest.raises(ValueError, match="num_train"):
        build_embedded_corpus(str(tmp_path / "x"), num_train=0)


ASK_FOR_CORPUS = """
import pathlib, sys
from vlengine.data.corpus import ensure_embedded_corpus
pathlib.Path(sys.argv[2]).touch()   # about to ask: the corpus is not built yet
print(ensure_embedded_corpus(sys.argv[1], seed=3, num_train=40, num_heldout=4, num_text_documents=2))
"""


def test_ensure_embedded_corpus_waits_for_a_build_under_way(tmp_path):
    """A process asking for the corpus while another builds it (rank 1 while rank 0 builds, on a fresh
    machine) waits and reuses that build: without the lock both wrote one .partial folder and one died."""
    root, asking = str(tmp_path / "corpus"), tmp_path / "asking"
    with FileLock(root + ".lock"):   # this process is the builder that got there first
        other = subprocess.Popen([sys.executable, "-c", ASK_FOR_CORPUS, root, str(asking)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not asking.exists():
            assert other.poll() is None and time.monotonic() < deadline, other.communicate()
            time.sleep(0.05)
        build_embedded_corpus(root, seed=3, num_train=40, num_heldout=4, num_text_documents=2)
        built = os.path.getmtime(os.path.join(root, "MANIFEST.json"))
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err
    assert out.strip() == root
    assert os.path.getmtime(os.path.join(root, "MANIFEST.json")) == built   # found built, not rebuilt
