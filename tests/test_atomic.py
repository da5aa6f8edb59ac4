"""vlengine.atomic: a write either replaces the file whole or leaves the old one untouched."""

import json
import os

import pytest

from vlengine.atomic import atomic_path, atomic_write, write_bytes, write_json, write_text


def test_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1}, indent=1)
    assert json.loads(path.read_text()) == {"a": 1}
    write_text(path, "new")
    assert path.read_text() == "new"
    write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with atomic_path(path) as tmp:
        assert tmp != str(path) and os.path.dirname(tmp) == str(tmp_path)   # same folder: rename is atomic
        with open(tmp, "wb") as f:
            f.write(b"by name")
    assert path.read_bytes() == b"by name"
    assert os.listdir(tmp_path) == ["x.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    path = tmp_path / "x.txt"
    write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("writer died")
    with pytest.raises(TypeError):
        write_json(path, {"not json": object()})
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(path, "a"):
            pass
