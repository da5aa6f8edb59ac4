"""Store round trip, O(1) access, checksums, truncation and corruption, atomic writes."""

import mmap
import os

import numpy as np
import pytest

from vlengine.data.store import StoreFormatError, StoreWriter, open_store


def _write(path, n=7, soft=None, shard_records=3, seed=0, with_images=False):
    rng = np.random.default_rng(seed)
    recs = []
    with StoreWriter(path, num_soft_classes=soft, shard_records=shard_records, with_images=with_images) as w:
        for i in range(n):
            k = int(rng.integers(0, 5))
            xy = rng.uniform(0, 50, (k, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(0, 20, (k, 2))], 1)
            rec = dict(image_id=f"img{i}", boxes=boxes, image_size=(100 + i, 200), features=rng.standard_normal((k, 2048)),
                       labels=rng.integers(-1, 10, k))
            if soft:
                rec["soft_labels"] = rng.random((k, soft))
            if with_images:
                rec["image_bytes"] = bytes(rng.integers(0, 256, 10 + i, dtype=np.uint8))
            idx = w.add_image(**rec)
            assert idx == i
            w.add_caption(i, f"caption {i} é", [101, 7, i, 102], [-1, 0, 1, -1])
            recs.append(rec)
            if w.checkpoint_due:
                w.checkpoint({"records": i + 1})
    return recs


def test_round_trip_every_column(tmp_path):
    path = str(tmp_path / "s")
    recs = _write(path, n=11, soft=5, with_images=True)
    s = open_store(path, verify="full")
    assert len(s) == 11 and len(s.captions) == 11 and len(s.regions.shards) == 4
    for i in range(10, -1, -1):  # random access, backwards across shards
        got, rec = s.image(i), recs[i]
        assert got["image_id"] == f"img{i}" and got["num_boxes"] == len(rec["boxes"])
        np.testing.assert_allclose(got["boxes"], np.float32(rec["boxes"]))
        np.testing.assert_array_equal(got["features"], rec["features"].astype(np.float16))
        np.testing.assert_array_equal(got["soft_labels"], rec["soft_labels"].astype(np.float16))
        np.testing.assert_array_equal(got["labels"], rec["labels"])
        np.testing.assert_array_equal(got["image_size"], [100 + i, 200])
        assert bytes(got["image"]) == rec["image_bytes"]
        cap = s.caption(i)
        assert cap["text"] == f"caption {i} é" and cap["image_index"] == i
        assert cap["token_ids"].tolist() == [101, 7, i, 102]
        assert s.index_of(f"img{i}") == i
    assert s.regions.lengths("boxes").tolist() == [len(r["boxes"]) for r in recs]
    with pytest.raises(IndexError, match="out of range"):
        s.image(11)
    with pytest.raises(KeyError, match="nope"):
        s.index_of("nope")


def test_store_maps_files_instead_of_reading_them(tmp_path):
    path = str(tmp_path / "s")
    _write(path, n=4)
    s = open_store(path)
    feats = s.image(3)["features"]
    base = feats
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert isinstance(base, mmap.mmap) and not feats.flags.writeable  # a view of the file, not a copy
    import pickle
    s2 = pickle.loads(pickle.dumps(s))  # workers reopen by path: the pickle holds no data
    assert len(pickle.dumps(s)) < 500 and np.array_equal(s2.image(3)["features"], feats)


def _shard_file(path, column, shard=0):
    return os.path.join(path, f"regions-{shard:05d}", f"{column}.bin")


def test_truncated_file_is_named_at_open(tmp_path):
    path = str(tmp_path / "s")
    _write(path)
    victim = _shard_file(path, "features", 1)
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 2)
    with pytest.raises(StoreFormatError, match=r"regions-00001.*features\.bin.*truncated"):
        open_store(path)


def test_corrupt_byte_fails_checksum_naming_file(tmp_path):
    path = str(tmp_path / "s")
    _write(path)
    victim = _shard_file(path, "boxes", 0)
    with open(victim, "r+b") as f:
        f.seek(5)
        b = f.read(1)
        f.seek(5)
        f.write(bytes([b[0] ^ 0xFF]))
    open_store(path)  # sizes still fine
    with pytest.raises(StoreFormatError, match=r"regions-00000.*boxes\.bin.*sha256"):
        open_store(path, verify="full")


def test_corrupt_offsets_and_index(tmp_path):
    path = str(tmp_path / "s")
    _write(path)
    off = os.path.join(path, "regions-00000", "features.offsets.bin")
    arr = np.fromfile(off, dtype="<i8")
    arr[1] = arr[2] + 5
    arr.tofile(off)
    with pytest.raises(StoreFormatError, match="features.offsets.bin"):
        open_store(path)
    with open(os.path.join(path, "index.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(StoreFormatError, match="index.json"):
        open_store(path)


def test_bad_records_name_the_record_and_leave_no_store(tmp_path):
    path = str(tmp_path / "s")
    cases = [
        (dict(boxes=[[0, 0, 1, 1]], features=np.full((1, 2048), np.nan)), "NaN"),
        (dict(boxes=[[5, 0, 1, 1]], features=np.zeros((1, 2048))), "inverted"),
        (dict(boxes=[[0, 0, 1, 1]], features=np.zeros((2, 2048))), r"shape \[1, 2048\]"),
        (dict(boxes=[[0, 0, 1, 1]], features=np.full((1, 2048), 1e6)), "float16 range"),
        (dict(boxes=[[0, 0, 1]], features=np.zeros((1, 2048))), r"\[N, 4\]"),
        (dict(boxes=[[0, 0, 1, 1]], features=np.array([["x"] * 2048])), "numeric"),
    ]
    for rec, msg in cases:
        with pytest.raises(ValueError, match=f"feats.tsv line 2: .*{msg}"):
            with StoreWriter(path) as w:
                w.add_image("ok", [[0, 0, 1, 1]], (4, 4), features=np.zeros((1, 2048)), source="feats.tsv line 1")
                w.add_image("bad", image_size=(4, 4), source="feats.tsv line 2", **rec)
        assert not os.path.exists(path) and not os.path.exists(path + ".partial")
    with pytest.raises(ValueError, match="image_size"):
        with StoreWriter(path) as w:
            w.add_image("x", [[0, 0, 1, 1]], (0, 4), features=np.zeros((1, 2048)))
    with pytest.raises(ValueError, match="image_index 3 out of range"):
        with StoreWriter(path) as w:
            w.add_caption(3, "x", [1], [0])
    assert not os.path.exists(path + ".partial")


def test_interrupted_write_resumes_from_checkpoint(tmp_path):
    path = str(tmp_path / "s")
    w = StoreWriter(path, shard_records=2, resume=True, fingerprint={"src": "a"})
    for i in range(5):
        w.add_image(f"i{i}", [[0, 0, 1, 1]], (2, 2), features=np.full((1, 2048), i))
        if w.checkpoint_due:
            w.checkpoint({"done": i + 1})
    # simulated crash: shard 2 is open with one record, never checkpointed
    assert not os.path.exists(path) and os.path.exists(path + ".partial")
    with pytest.raises(FileNotFoundError, match="partial"):
        open_store(path)
    with pytest.raises(ValueError, match="different settings"):
        StoreWriter(path, shard_records=2, resume=True, fingerprint={"src": "b"})
    w2 = StoreWriter(path, shard_records=2, resume=True, fingerprint={"src": "a"})
    assert w2.resume_position == {"done": 4} and w2.num_images == 4
    for i in range(4, 6):
        w2.add_image(f"i{i}", [[0, 0, 1, 1]], (2, 2), features=np.full((1, 2048), i))
    w2.close()
    s = open_store(path, verify="full")
    assert [s.image_id(i) for i in range(len(s))] == [f"i{i}" for i in range(6)]
    assert [float(s.image(i)["features"][0, 0]) for i in range(6)] == list(range(6))


def test_existing_output_is_never_clobbered(tmp_path):
    path = str(tmp_path / "s")
    _write(path, n=2)
    with pytest.raises(FileExistsError, match="already exists"):
        StoreWriter(path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        open_store(str(tmp_path / "missing"))


def test_empty_store_and_images_without_boxes(tmp_path):
    path = str(tmp_path / "empty")
    StoreWriter(path).close()
    s = open_store(path, verify="full")
    assert len(s) == 0 and len(s.captions) == 0 and s.regions.lengths("boxes").size == 0
    path = str(tmp_path / "noboxes")
    with StoreWriter(path) as w:
        w.add_image("a", np.zeros((0, 4)), (3, 3), features=np.zeros((0, 2048)))
        w.add_image("b", [[0, 0, 1, 1]], (3, 3), features=np.ones((1, 2048)))
    s = open_store(path, verify="full")
    assert s.image(0)["num_boxes"] == 0 and s.image(0)["features"].shape == (0, 2048)
    assert s.image(1)["features"].sum() == 2048


def test_index_cannot_point_outside_the_store(tmp_path):
    import json
    path = str(tmp_path / "s")
    _write(path, n=2)
    index = json.load(open(os.path.join(path, "index.json")))
    index["tables"]["regions"]["shards"][0]["dir"] = "../elsewhere"
    json.dump(index, open(os.path.join(path, "index.json"), "w"))
    with pytest.raises(StoreFormatError, match="invalid file name '../elsewhere'"):
        open_store(path)
    del index["tables"]["regions"]["shards"][0]["files"]
    index["tables"]["regions"]["shards"][0]["dir"] = "regions-00000"
    json.dump(index, open(os.path.join(path, "index.json"), "w"))
    with pytest.raises(StoreFormatError, match="index.json: malformed index"):
        open_store(path)
