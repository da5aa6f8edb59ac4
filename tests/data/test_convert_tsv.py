"""LXMERT/BUTD TSV -> store: round trip, CLI, captions, corrupt lines, resume after Ctrl-C."""

import base64
import json
import os

import numpy as np
import pytest

from vlengine.data.cli import main as data_main
from vlengine.data.convert import ConversionError, TsvSource, convert
from vlengine.data.convert.tsv import write_tsv_line
from vlengine.data.text import write_vocab

from data_sources import InterruptAfter, check_store, random_records, same_store_content


def _write_tsv(path, records):
    with open(path, "w") as f:
        for r in records:
            write_tsv_line(f, r["image_id"], (r["image_h"], r["image_w"]), r["boxes"], r["features"], objects_id=r["labels"])


def _write_butd(path, records):
    enc = lambda a: base64.b64encode(np.ascontiguousarray(a, np.float32).tobytes()).decode()
    with open(path, "w") as f:
        for r in records:
            f.write("\t".join([r["image_id"], str(r["image_w"]), str(r["image_h"]), str(len(r["boxes"])),
                               enc(r["boxes"]), enc(r["features"])]) + "\n")


def test_round_trip_lxmert_and_butd(tmp_path):
    recs = random_records(9, seed=1)
    _write_tsv(tmp_path / "a.tsv", recs[:5])
    _write_tsv(tmp_path / "b.tsv", recs[5:])
    out = convert(TsvSource([str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")]), str(tmp_path / "s"),
                  shard_bytes=40_000, progress=False)
    store = check_store(out, recs)
    assert len(store.regions.shards) > 1
    assert store.image(0)["image_size"].tolist() == [recs[0]["image_h"], recs[0]["image_w"]]
    _write_butd(tmp_path / "c.tsv", recs)
    out2 = convert(TsvSource([str(tmp_path / "c.tsv")], fields="butd"), str(tmp_path / "s2"), progress=False)
    s2 = check_store(out2, recs, labels=False)
    assert s2.image(3)["image_size"].tolist() == [recs[3]["image_h"], recs[3]["image_w"]]


def test_cli_with_captions(tmp_path):
    recs = random_records(4, seed=2)
    _write_tsv(tmp_path / "f.tsv", recs)
    vocab = write_vocab(["a", "dog", "cat", "on", "sofa"], str(tmp_path / "vocab.txt"))
    with open(tmp_path / "caps.jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps({"image_id": r["image_id"], "caption": "a dog on a sofa"}) + "\n")
        f.write(json.dumps({"image_id": recs[0]["image_id"], "caption": "a cat"}) + "\n")
    rc = data_main(["convert", "--from", "tsv", str(tmp_path / "f.tsv"), "--out", str(tmp_path / "s"),
                    "--captions", str(tmp_path / "caps.jsonl"), "--vocab", vocab, "--no-progress"])
    assert rc == 0
    store = check_store(str(tmp_path / "s"), recs)
    assert len(store.captions) == 5 and store.caption(4)["text"] == "a cat" and store.caption(4)["image_index"] == 0
    assert store.vocab_file is not None
    # an unknown image id in the captions file names the line and leaves nothing behind
    with open(tmp_path / "caps2.jsonl", "w") as f:
        f.write(json.dumps({"image_id": "nope", "caption": "a dog"}) + "\n")
    rc = data_main(["convert", "--from", "tsv", str(tmp_path / "f.tsv"), "--out", str(tmp_path / "t"),
                    "--captions", str(tmp_path / "caps2.jsonl"), "--vocab", vocab, "--no-progress"])
    assert rc == 1 and not os.path.exists(tmp_path / "t") and not os.path.exists(str(tmp_path / "t") + ".partial")


def _corrupt_variants(good_line: str):
    f = good_line.rstrip("\n").split("\t")
    trunc_feats = f[:9] + [f[9][: len(f[9]) // 2 // 4 * 4]]
    bad_b64 = f[:8] + ["!!notbase64!!"] + f[9:]
    bad_num = f[:7] + ["x"] + f[8:]
    return {"truncated features": ("\t".join(trunc_feats), "features"),
            "missing fields": ("\t".join(f[:6]), "fields"),
            "bad base64": ("\t".join(bad_b64), "base64"),
            "bad num_boxes": ("\t".join(bad_num), "num_boxes"),
            "truncated line": (good_line[: len(good_line) // 3], "")}


@pytest.mark.parametrize("case", ["truncated features", "missing fields", "bad base64", "bad num_boxes", "truncated line"])
def test_corrupt_line_names_file_and_line_and_leaves_no_store(tmp_path, case):
    recs = random_records(4, seed=3)
    _write_tsv(tmp_path / "f.tsv", recs)
    lines = open(tmp_path / "f.tsv").read().splitlines(keepends=True)
    bad, what = _corrupt_variants(lines[2])[case]
    lines[2] = bad + "\n"
    open(tmp_path / "f.tsv", "w").writelines(lines)
    with pytest.raises(ConversionError, match=rf"f\.tsv line 3.*{what}"):
        convert(TsvSource([str(tmp_path / "f.tsv")]), str(tmp_path / "s"), progress=False)
    assert not os.path.exists(tmp_path / "s") and not os.path.exists(str(tmp_path / "s") + ".partial")


def test_nan_features_and_bad_utf8(tmp_path):
    recs = random_records(3, seed=4)
    recs[1]["features"][0, 5] = np.nan
    _write_tsv(tmp_path / "f.tsv", recs)
    with pytest.raises(ValueError, match=r"f\.tsv line 2 \(image COCO_000001\): features contain NaN"):
        convert(TsvSource([str(tmp_path / "f.tsv")]), str(tmp_path / "s"), progress=False)
    with open(tmp_path / "g.tsv", "wb") as f:
        f.write(b"\xff\xfe\x00garbage" + b"\t1" * 9 + b"\n")
    with pytest.raises(ConversionError, match=r"g\.tsv line 1.*img_id.*UTF-8"):
        convert(TsvSource([str(tmp_path / "g.tsv")]), str(tmp_path / "s"), progress=False)
    assert not os.path.exists(str(tmp_path / "s") + ".partial")


def test_resume_after_interrupt_gives_the_same_store(tmp_path):
    recs = random_records(12, seed=5)
    _write_tsv(tmp_path / "f.tsv", recs)
    src = TsvSource([str(tmp_path / "f.tsv")])
    reference = convert(src, str(tmp_path / "ref"), shard_bytes=30_000, progress=False)
    with pytest.raises(KeyboardInterrupt):
        convert(InterruptAfter(src, 8), str(tmp_path / "s"), shard_bytes=30_000, progress=False)
    assert not os.path.exists(tmp_path / "s") and os.path.exists(str(tmp_path / "s") + ".partial")
    progress = json.load(open(os.path.join(str(tmp_path / "s") + ".partial", "progress.json")))
    assert 0 < progress["position"]["records"] <= 8
    out = convert(src, str(tmp_path / "s"), shard_bytes=30_000, progress=False)
    check_store(out, recs)
    same_store_content(reference, out)
