"""UNITER-style LMDB (msgpack-numpy and npz values) and per-image .npz directories -> store."""

import io
import json
import os

import lmdb
import msgpack
import numpy as np
import pytest

from vlengine.data.cli import main as data_main
from vlengine.data.convert import ConversionError, LmdbSource, NpzDirSource, convert

from data_sources import InterruptAfter, check_store, random_records, same_store_content

CLASSES = 1601


def _msgpack_numpy(d):
    """The byte layout msgpack-numpy writes (UNITER's img_db), built by hand."""
    enc = {k.encode(): {b"nd": True, b"type": v.dtype.str, b"kind": b"", b"shape": list(v.shape), b"data": v.tobytes()}
           for k, v in d.items()}
    return msgpack.packb(enc, use_bin_type=True)


def _npz_bytes(d):
    buf = io.BytesIO()
    np.savez_compressed(buf, **d)
    return buf.getvalue()


def _uniter_value(r):
    h, w = r["image_h"], r["image_w"]
    b = r["boxes"] / np.array([w, h, w, h], np.float32)
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    norm_bb = np.concatenate([b, bw[:, None], bh[:, None], (bw * bh)[:, None]], 1).astype(np.float16)
    return {"features": r["features"].astype(np.float16), "norm_bb": norm_bb,
            "conf": r["soft_labels"].max(1).astype(np.float16), "soft_labels": r["soft_labels"].astype(np.float16)}


def _write_lmdb(path, recs, encoding="msgpack", corrupt=None):
    env = lmdb.open(path, map_size=1 << 28)
    with env.begin(write=True) as txn:
        for r in recs:
            value = _uniter_value(r)
            raw = _msgpack_numpy(value) if encoding == "msgpack" else _npz_bytes(value)
            if corrupt == r["image_id"]:
                raw = raw[: len(raw) // 2]
            txn.put(r["image_id"].encode(), raw)
    env.close()


@pytest.mark.parametrize("encoding", ["msgpack", "npz"])
def test_lmdb_round_trip(tmp_path, encoding):
    recs = random_records(7, seed=12, classes=CLASSES, max_boxes=4)
    for r in recs:  # UNITER stores float16 features
        r["features"] = r["features"].astype(np.float16).astype(np.float32)
    db = str(tmp_path / "feat.lmdb")
    _write_lmdb(db, recs, encoding)
    sizes = {r["image_id"]: [r["image_h"], r["image_w"]] for r in recs}
    json.dump(sizes, open(tmp_path / "sizes.json", "w"))
    rc = data_main(["convert", "--from", "lmdb", db, "--out", str(tmp_path / "s"), "--image-sizes",
                    str(tmp_path / "sizes.json"), "--no-progress"])
    assert rc == 0
    for r in recs:  # normalised boxes went through float16
        h, w = r["image_h"], r["image_w"]
        r["boxes"] = (r["boxes"] / np.array([w, h, w, h], np.float32)).astype(np.float16).astype(np.float32) * \
            np.array([w, h, w, h], np.float32)
        r["soft_labels"] = r["soft_labels"].astype(np.float16)
        r["labels"] = r["soft_labels"].astype(np.float32).argmax(1)
    store = check_store(str(tmp_path / "s"), recs, soft=True)
    assert store.num_soft_classes == CLASSES
    # without sizes: boxes stay normalised, image size (1, 1)
    out = convert(LmdbSource(db), str(tmp_path / "n"), num_soft_classes=CLASSES, progress=False)
    rec = open_first(out)
    assert rec["image_size"].tolist() == [1.0, 1.0] and rec["boxes"].max() <= 1.0


def open_first(path):
    from vlengine.data.store import open_store
    return open_store(path).image(0)


def test_lmdb_corrupt_value_and_object_arrays(tmp_path):
    recs = random_records(4, seed=13, classes=CLASSES, max_boxes=2)
    db = str(tmp_path / "bad.lmdb")
    _write_lmdb(db, recs, corrupt=recs[2]["image_id"])
    with pytest.raises(ConversionError, match=rf"bad\.lmdb key '{recs[2]['image_id']}'"):
        convert(LmdbSource(db), str(tmp_path / "s"), num_soft_classes=CLASSES, progress=False)
    assert not os.path.exists(tmp_path / "s") and not os.path.exists(str(tmp_path / "s") + ".partial")
    db2 = str(tmp_path / "obj.lmdb")
    env = lmdb.open(db2, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"img", msgpack.packb({b"features": {b"nd": True, b"type": "|O", b"kind": b"", b"shape": [1],
                                                     b"data": b"\x80\x04junk"}}, use_bin_type=True))
    env.close()
    with pytest.raises(ConversionError, match="key 'img'.*pickle"):
        convert(LmdbSource(db2), str(tmp_path / "s"), progress=False)
    with pytest.raises(FileNotFoundError, match="no such database"):
        LmdbSource(str(tmp_path / "missing.lmdb"))


def _write_npz_dir(root, recs, style="plain"):
    os.makedirs(root, exist_ok=True)
    for r in recs:
        if style == "plain":
            d = {"features": r["features"], "boxes": r["boxes"], "image_h": r["image_h"], "image_w": r["image_w"],
                 "labels": r["labels"], "soft_labels": r["soft_labels"]}
        else:  # bottom-up-attention.pytorch: x (transposed when saved that way), bbox, num_bbox, image_h/w, info (pickled)
            d = {"x": r["features"].T, "bbox": r["boxes"], "num_bbox": len(r["boxes"]), "image_h": r["image_h"],
                 "image_w": r["image_w"], "objects_id": r["labels"], "cls_prob": r["soft_labels"],
                 "info": np.array([{"objects_conf": 1.0}], dtype=object)}
        np.savez(os.path.join(root, r["image_id"] + ".npz"), **d)


@pytest.mark.parametrize("style", ["plain", "bua"])
def test_npz_round_trip(tmp_path, style):
    recs = random_records(6, seed=14, classes=CLASSES, max_boxes=3)
    _write_npz_dir(str(tmp_path / "feats"), recs, style)
    rc = data_main(["convert", "--from", "npz", str(tmp_path / "feats"), "--out", str(tmp_path / "s"),
                    "--soft-classes", str(CLASSES), "--no-progress"])
    assert rc == 0
    check_store(str(tmp_path / "s"), recs, soft=True)


def test_npz_corrupt_file_and_resume(tmp_path):
    recs = random_records(8, seed=15, classes=CLASSES, max_boxes=3)
    d = str(tmp_path / "feats")
    _write_npz_dir(d, recs)
    src = NpzDirSource(d, num_soft_classes=CLASSES)
    ref = convert(src, str(tmp_path / "ref"), num_soft_classes=CLASSES, shard_bytes=30_000, progress=False)
    with pytest.raises(KeyboardInterrupt):
        convert(InterruptAfter(src, 5), str(tmp_path / "s"), num_soft_classes=CLASSES, shard_bytes=30_000, progress=False)
    same_store_content(ref, convert(src, str(tmp_path / "s"), num_soft_classes=CLASSES, shard_bytes=30_000, progress=False))
    victim = os.path.join(d, recs[3]["image_id"] + ".npz")
    data = open(victim, "rb").read()
    open(victim, "wb").write(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=rf"{recs[3]['image_id']}\.npz: not a readable npz"):
        convert(NpzDirSource(d, num_soft_classes=CLASSES), str(tmp_path / "t"), num_soft_classes=CLASSES, progress=False)
    np.savez(victim, features=recs[3]["features"], image_h=5, image_w=5)
    with pytest.raises(ConversionError, match=r"none of the keys \['boxes', 'bbox'\]"):
        convert(NpzDirSource(d, num_soft_classes=CLASSES), str(tmp_path / "t"), num_soft_classes=CLASSES, progress=False)
    assert not os.path.exists(tmp_path / "t") and not os.path.exists(str(tmp_path / "t") + ".partial")
