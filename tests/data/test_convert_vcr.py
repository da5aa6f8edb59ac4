"""`vlengine data convert --from vcr` / `--from vcr-images`: official VCR jsonl + metadata JSON + images
(written here in the official formats) into an annotation set and a raw-image store; mentions become
names / class names carrying their detection index; names depend on the detection index only."""

import json

import numpy as np
import pytest
from PIL import Image

from vlengine.data.annotations import open_annotations
from vlengine.data.cli import main as data_main
from vlengine.data.convert.base import ConversionError
from vlengine.data.convert.vcr import NAMES, VcrSource, render
from vlengine.data.store import open_store

OBJECTS = ["person", "person", "dining table", "dog"]
ROW = {"annot_id": "val-0", "img_fn": "movie/clip@1.jpg", "metadata_fn": "movie/clip@1.json", "objects": OBJECTS,
       "question": ["Why", "is", [0, 1], "next", "to", [2], "?"],
       "answer_choices": [[[0], "is", "hungry", "."], ["The", [3], "barks", "."], ["No", "."], [[1], "waits", "."]],
       "rationale_choices": [["A", "meal", "."], [[0, 1, 3], "sit", "."], ["B", "."], ["C", "."]],
       "answer_label": 0, "rationale_label": 1}


def write_vcr(tmp_path, rows, name="val.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_images(tmp_path, boxes=((1, 2, 10, 12, 0.9), (3, 3, 8, 9, 0.8), (0, 5, 20, 15, 0.7), (2, 2, 4, 4, 0.5))):
    root = tmp_path / "vcr1images" / "movie"
    root.mkdir(parents=True)
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(root / "clip@1.jpg")
    (root / "clip@1.json").write_text(json.dumps({"boxes": [list(b) for b in boxes], "segms": [], "width": 24,
                                                  "height": 16}))
    return str(tmp_path / "vcr1images")


def test_mentions_become_words_with_their_region():
    out = render(["Why", "is", [0, 1], "next", "to", [2], "?"], OBJECTS, "q")
    assert out["words"] == ["Why", "is", NAMES[0], "and", NAMES[1], "next", "to", "dining", "table", "?"]
    assert out["regions"] == [-1, -1, 0, -1, 1, -1, -1, 2, 2, -1]
    three = render([[0, 1, 3]], OBJECTS, "r")
    assert three == {"words": [NAMES[0], ",", NAMES[1], "and", "dog"], "regions": [0, -1, 1, -1, 3]}


def test_names_come_from_the_detection_index_only():
    # the same person reads the same in any example, in any order: no counter (VL-BERT's is loader-order dependent)
    objects = ["person"] * 20
    first = render([[15]], objects, "a")["words"]
    for _ in range(3):
        render([[3], [7]], objects, "b")
    assert render([[15]], objects, "c")["words"] == first == [NAMES[15 % len(NAMES)]]


def test_jsonl_to_annotation_set_and_images_to_store(tmp_path):
    test_row = {k: v for k, v in ROW.items() if k not in ("answer_label", "rationale_label")}
    test_row["annot_id"] = "test-0"
    jsonl = write_vcr(tmp_path, [ROW, test_row])
    images = write_images(tmp_path)
    store = str(tmp_path / "store")
    assert data_main(["convert", "--from", "vcr-images", images, jsonl, "--out", store, "--no-progress"]) == 0
    s = open_store(store)
    assert s.index_of("movie/clip@1") == 0 and s.has_images
    boxes = s.image(0)["boxes"]   # the whole image, then the 4 detections without their scores
    np.testing.assert_array_equal(boxes, [[0, 0, 23, 15], [1, 2, 10, 12], [3, 3, 8, 9], [0, 5, 20, 15], [2, 2, 4, 4]])
    assert data_main(["convert", "--from", "vcr", jsonl, "--images", store, "--out", str(tmp_path / "set"),
                      "--no-progress"]) == 0
    aset = open_annotations(str(tmp_path / "set"))
    assert aset.task == "vcr" and len(aset) == 2
    rec = aset[0]
    assert rec["id"] == "val-0" and rec["images"] == ["movie/clip@1"] and rec["answer_label"] == 0
    assert rec["text"] == f"Why is {NAMES[0]} and {NAMES[1]} next to dining table ?"
    assert rec["answer_choices"][1] == {"words": ["The", "dog", "barks", "."], "regions": [-1, 3, -1, -1]}
    assert len(rec["rationale_choices"]) == 4 and rec["rationale_label"] == 1
    assert "answer_label" not in aset[1]


def test_conversion_is_the_same_across_runs(tmp_path):
    jsonl = write_vcr(tmp_path, [ROW])
    a = [r for r, _ in VcrSource([jsonl]).examples()]
    b = [r for r, _ in VcrSource([jsonl]).examples()]
    assert a == b


@pytest.mark.parametrize("change, message", [
    ({"answer_choices": [["a"]] * 3}, "must hold 4 choices"),
    ({"question": ["Is", [9], "?"]}, "detection index 9 is out of range"),
    ({"question": ["Is", {"x": 1}]}, "neither a word nor a list"),
    ({"answer_label": 4}, "must be 0..3"),
    ({"objects": "person"}, "'objects' must be list"),
])
def test_bad_input_is_one_clear_error(tmp_path, change, message):
    jsonl = write_vcr(tmp_path, [{**ROW, **change}])
    with pytest.raises(ConversionError, match=message) as e:
        list(VcrSource([jsonl]).examples())
    assert "line 1 (annot_id val-0)" in str(e.value) or "line 1" in str(e.value)


def test_cli_bad_input_prints_one_line(tmp_path, capsys):
    jsonl = write_vcr(tmp_path, [{**ROW, "rationale_label": None}])
    rc = data_main(["convert", "--from", "vcr", jsonl, "--out", str(tmp_path / "set"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0 and "rationale_label" in err and "Traceback" not in err
    assert not (tmp_path / "set").exists()


def test_metadata_size_must_match_the_image(tmp_path):
    jsonl = write_vcr(tmp_path, [ROW])
    images = write_images(tmp_path)
    (tmp_path / "vcr1images" / "movie" / "clip@1.json").write_text(json.dumps({"boxes": [], "width": 99, "height": 16}))
    rc = data_main(["convert", "--from", "vcr-images", images, jsonl, "--out", str(tmp_path / "s"), "--no-progress"])
    assert rc != 0
