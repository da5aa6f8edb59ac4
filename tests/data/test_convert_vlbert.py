"""VL-BERT JSON lines with frcnn records in zip files -> store."""

import base64
import json
import os
import zipfile

import numpy as np
import pytest

from vlengine.data.cli import main as data_main
from vlengine.data.convert import ConversionError, VlbertSource, convert
from vlengine.data.text import write_vocab

from data_sources import InterruptAfter, check_store, random_records, same_store_content

CLASSES = 1601


def _b64(a):
    return base64.b64encode(np.ascontiguousarray(a, np.float32).tobytes()).decode()


def _frcnn(r):
    return {"image_id": r["image_id"], "image_h": r["image_h"], "image_w": r["image_w"], "num_boxes": len(r["boxes"]),
            "boxes": _b64(r["boxes"]), "classes": _b64(r["soft_labels"]), "features": _b64(r["features"])}


def _write_layout(root, recs, captions_per_image=2, inline_last=True, mutate=None):
    """VL-BERT's conceptual captions layout: train_frcnn.zip + train.json (one line per caption)."""
    os.makedirs(root, exist_ok=True)
    with zipfile.ZipFile(os.path.join(root, "train_frcnn.zip"), "w") as zf:
        for r in recs:
            rec = _frcnn(r)
            if mutate:
                rec = mutate(r["image_id"], rec)
            zf.writestr(f"train_frcnn/{r['image_id']}.json", json.dumps(rec))
    lines = []
    for i, r in enumerate(recs):
        for c in range(captions_per_image):
            frcnn = _frcnn(r) if inline_last and i == len(recs) - 1 else f"train_frcnn.zip@/train_frcnn/{r['image_id']}.json"
            lines.append(json.dumps({"image": f"train_image.zip@/train_image/{r['image_id']}.jpg",
                                     "caption": f"a photo number {c}", "frcnn": frcnn}))
    with open(os.path.join(root, "train.json"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return os.path.join(root, "train.json")


def _vocab(tmp_path):
    return write_vocab(["a", "photo", "number", "0", "1"], str(tmp_path / "vocab.txt"))


def test_round_trip_with_soft_labels_and_captions(tmp_path):
    recs = random_records(6, seed=7, classes=CLASSES, max_boxes=4)
    ann = _write_layout(str(tmp_path / "cc"), recs)
    out = convert(VlbertSource([ann]), str(tmp_path / "s"), num_soft_classes=CLASSES, vocab_file=_vocab(tmp_path),
                  shard_bytes=60_000, progress=False)
    store = check_store(out, recs, soft=True)
    assert len(store.captions) == 12
    for j in range(12):
        cap = store.caption(j)
        assert cap["image_index"] == j // 2 and cap["text"] == f"a photo number {j % 2}"


def test_annotation_inside_a_zip_and_cli(tmp_path):
    recs = random_records(3, seed=8, classes=CLASSES, max_boxes=3)
    ann = _write_layout(str(tmp_path / "cc"), recs, inline_last=False)
    with zipfile.ZipFile(tmp_path / "cc" / "ann.zip", "w") as zf:
        zf.write(ann, "train.json")
    rc = data_main(["convert", "--from", "vlbert-zip", str(tmp_path / "cc" / "ann.zip") + "@/train.json",
                    "--out", str(tmp_path / "s"), "--vocab", _vocab(tmp_path), "--no-progress"])
    assert rc == 0
    check_store(str(tmp_path / "s"), recs, soft=True)


@pytest.mark.parametrize("mutation,message", [
    (lambda i, r: {**r, "features": r["features"][:-400]}, "features"),
    (lambda i, r: {k: v for k, v in r.items() if k != "num_boxes"}, "num_boxes"),
    (lambda i, r: {**r, "classes": "###"}, "classes.*base64"),
    (lambda i, r: {**r, "boxes": _b64(np.zeros((r["num_boxes"], 3)))}, "boxes"),
])
def test_corrupt_frcnn_member_is_named(tmp_path, mutation, message):
    recs = random_records(4, seed=9, classes=CLASSES, max_boxes=3)
    bad_id = recs[2]["image_id"]
    ann = _write_layout(str(tmp_path / "cc"), recs, mutate=lambda i, r: mutation(i, r) if i == bad_id else r)
    with pytest.raises(ConversionError, match=rf"train\.json line 5 \(train_frcnn\.zip@/train_frcnn/{bad_id}\.json\).*{message}"):
        convert(VlbertSource([ann]), str(tmp_path / "s"), num_soft_classes=CLASSES, vocab_file=_vocab(tmp_path),
                progress=False)
    assert not os.path.exists(tmp_path / "s") and not os.path.exists(str(tmp_path / "s") + ".partial")


def test_missing_member_and_bad_json_line(tmp_path):
    recs = random_records(2, seed=10, classes=CLASSES, max_boxes=2)
    ann = _write_layout(str(tmp_path / "cc"), recs, inline_last=False)
    lines = open(ann).read().splitlines()
    lines[1] = json.dumps({"caption": "x", "frcnn": "train_frcnn.zip@/train_frcnn/missing.json"})
    lines.append("{broken")
    open(ann, "w").write("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match=r"train\.json line 2.*missing\.json: no such member"):
        convert(VlbertSource([ann]), str(tmp_path / "s"), num_soft_classes=CLASSES, vocab_file=_vocab(tmp_path),
                progress=False)
    lines[1] = lines[0]
    open(ann, "w").write("\n".join(lines) + "\n")
    with pytest.raises(ConversionError, match=r"train\.json line 5: not valid JSON"):
        convert(VlbertSource([ann]), str(tmp_path / "s"), num_soft_classes=CLASSES, vocab_file=_vocab(tmp_path),
                progress=False)
    assert not os.path.exists(str(tmp_path / "s") + ".partial")


def test_resume_after_interrupt(tmp_path):
    recs = random_records(10, seed=11, classes=CLASSES, max_boxes=3)
    ann = _write_layout(str(tmp_path / "cc"), recs)
    src, vocab = VlbertSource([ann]), _vocab(tmp_path)
    kw = dict(num_soft_classes=CLASSES, vocab_file=vocab, shard_bytes=40_000, progress=False)
    ref = convert(src, str(tmp_path / "ref"), **kw)
    with pytest.raises(KeyboardInterrupt):
        convert(InterruptAfter(src, 13), str(tmp_path / "s"), **kw)
    out = convert(src, str(tmp_path / "s"), **kw)
    same_store_content(ref, out)
