"""`vlengine data ...`: corpus, info, verify (and its error exit on a corrupt store)."""

import json
import os

from vlengine.cli import main as vlengine_main


def test_corpus_info_verify(tmp_path, capsys):
    out = str(tmp_path / "corpus")
    assert vlengine_main(["data", "corpus", out, "--seed", "3", "--num-train", "12", "--num-heldout", "4"]) == 0
    manifest = json.load(open(os.path.join(out, "MANIFEST.json")))
    assert manifest["seed"] == 3 and manifest["counts"]["train"]["images"] == 12
    assert vlengine_main(["data", "corpus", out, "--num-train", "12", "--num-heldout", "4"]) == 1  # exists
    capsys.readouterr()
    assert vlengine_main(["data", "info", os.path.join(out, "train")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 12 and info["captions"] == 60 and "features" in info["region_columns"]
    assert vlengine_main(["data", "verify", os.path.join(out, "heldout")]) == 0
    victim = os.path.join(out, "heldout", "captions-00000", "text.bin")
    data = bytearray(open(victim, "rb").read())
    data[3] ^= 0x20
    open(victim, "wb").write(bytes(data))
    capsys.readouterr()
    assert vlengine_main(["data", "verify", os.path.join(out, "heldout")]) == 1
    err = capsys.readouterr().err
    assert "captions-00000" in err and "text.bin" in err and "sha256" in err
