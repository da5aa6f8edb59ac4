"""`vlengine data convert --from refcoco`: the refer toolkit's refs(unc).p (a real pickle written here)
and COCO's instances.json into an annotation set; a pickle naming a global is refused before its payload
can run; detections JSON as the detected-box track's proposals."""

import json
import os
import pickle

import numpy as np
import pytest

from vlengine.data.annotations import open_annotations
from vlengine.data.cli import main as data_main
from vlengine.data.convert.annotation_base import convert_annotations
from vlengine.data.convert.base import ConversionError
from vlengine.data.convert.refcoco import RefcocoSource, load_refs
from vlengine.data.store import StoreWriter

REFS = [
    {"ref_id": 0, "ann_id": 11, "image_id": 7, "category_id": 1, "split": "val", "file_name": "x.jpg",
     "sentences": [{"sent": "left dog", "raw": "Left dog.", "tokens": ["left", "dog"], "sent_id": 100},
                   {"sent": "dog on the left", "raw": "dog on the left", "tokens": [], "sent_id": 101}]},
    {"ref_id": 1, "ann_id": 12, "image_id": 9, "category_id": 2, "split": "train",
     "sentences": [{"sent": "the cat", "raw": "the cat", "tokens": ["the", "cat"], "sent_id": 102}]},
    {"ref_id": 2, "ann_id": 13, "image_id": 9, "category_id": 1, "split": "testA",
     "sentences": [{"sent": "caf\u00e9 man", "raw": "caf\u00e9 man", "tokens": [], "sent_id": 103}]},
]
INSTANCES = {"images": [{"id": 7, "file_name": "COCO_train2014_000000000007.jpg"},
                        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg"}],
             "annotations": [{"id": 11, "image_id": 7, "bbox": [10, 20, 30, 40], "category_id": 1},
                             {"id": 12, "image_id": 9, "bbox": [0.5, 1.5, 2, 3], "category_id": 2},
                             {"id": 13, "image_id": 9, "bbox": [5, 5, 5, 5], "category_id": 1}]}


def refer_files(tmp_path, refs=REFS, instances=INSTANCES):
    refs_path, instances_path = tmp_path / "refs(unc).p", tmp_path / "instances.json"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))   # protocol 2: what Python 2 wrote the real file with
    instances_path.write_text(json.dumps(instances))
    return str(refs_path), str(instances_path)


def store(path, image_ids):
    with StoreWriter(str(path), feature_dim=4) as w:
        for image_id in image_ids:
            w.add_image(image_id, np.array([[0, 0, 99, 99], [10, 20, 40, 60]], np.float32), (100, 100),
                        features=np.zeros((2, 4)))
    return str(path)


def test_splits_become_one_record_per_expression(tmp_path):
    refs, instances = refer_files(tmp_path)
    images = store(tmp_path / "feats", ["COCO_train2014_000000000007", "COCO_train2014_000000000009"])
    assert data_main(["convert", "--from", "refcoco", refs, instances, "--split", "val,testA", "--image-id-template",
                      "{file_stem}", "--images", images, "--out", str(tmp_path / "set"), "--no-progress"]) == 0
    aset = open_annotations(str(tmp_path / "set"))
    assert aset.task == "refcoco" and len(aset) == 3
    first = aset[0]
    assert first == {"id": "100", "images": ["COCO_train2014_000000000007"], "text": "left dog", "ref_id": 0,
                     "ann_id": 11, "image_id": 7, "sent_id": 100, "split": "val", "category_id": 1,
                     "bbox": [10.0, 20.0, 30.0, 40.0]}
    assert [aset[i]["id"] for i in range(3)] == ["100", "101", "103"]
    assert aset[2]["text"] == "caf\u00e9 man" and aset[2]["bbox"] == [5.0, 5.0, 5.0, 5.0]
    assert aset.attrs["source_format"] == "refcoco"


def test_a_pickle_naming_a_global_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    evil = [dict(REFS[0], sentences=[{"sent": "x", "sent_id": 1, "raw": "x", "tokens": []}], extra=Payload())]
    refs, instances = refer_files(tmp_path, refs=evil)
    # the payload is real: an ordinary unpickler runs it
    pickle.loads(open(refs, "rb").read())
    assert marker.is_dir()
    marker.rmdir()
    with pytest.raises(ConversionError, match=r"refs\(unc\)\.p: refusing to load: the pickle names the global "
                                              r"(posix|os|nt)\.mkdir .*nothing of it was run"):
        load_refs(refs)
    assert not marker.exists()
    assert data_main(["convert", "--from", "refcoco", refs, instances, "--split", "val",
                      "--out", str(tmp_path / "set"), "--no-progress"]) == 1
    assert "refusing to load" in capsys.readouterr().err and not marker.exists()
    assert not (tmp_path / "set").exists()


def test_malformed_files_name_the_record(tmp_path):
    refs, instances = refer_files(tmp_path, instances=dict(INSTANCES, annotations=INSTANCES["annotations"][1:]))
    with pytest.raises(ConversionError, match=r"ref 0 \(ref_id 0\): ann_id 11 is not in .*instances.json"):
        convert_annotations(RefcocoSource(refs, instances, ["val"]), str(tmp_path / "a"), progress=False)
    refs, instances = refer_files(tmp_path, refs=[dict(REFS[0], image_id=9)])
    with pytest.raises(ConversionError, match="image_id 9 differs from annotation 11's"):
        convert_annotations(RefcocoSource(refs, instances, ["val"]), str(tmp_path / "b"), progress=False)
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(ConversionError, match="expected a list of refs, got dict"):
        load_refs(str(tmp_path / "refs(unc).p"))
    (tmp_path / "refs(unc).p").write_bytes(b"\x80\x02]q\x00(")
    with pytest.raises(ConversionError, match="not a readable refs pickle"):
        load_refs(str(tmp_path / "refs(unc).p"))
    with pytest.raises(ValueError, match="splits must be among"):
        RefcocoSource(refs, instances, ["validation"])


def test_detections_become_the_proposals_of_the_kept_images(tmp_path, capsys):
    refs, instances = refer_files(tmp_path)
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{"image_id": 7, "box": [10, 20, 30, 40], "score": 0.9},
                                      {"image_id": 7, "bbox": [1, 2, 3, 4]},
                                      {"image_id": 8, "box": [0, 0, 1, 1]}]))
    assert data_main(["convert", "--from", "refcoco", refs, instances, "--split", "val", "--proposals",
                      str(detections), "--out", str(tmp_path / "set"), "--no-progress"]) == 0
    assert open_annotations(str(tmp_path / "set")).extra("proposals") == {"7": [[10.0, 20.0, 30.0, 40.0],
                                                                                [1.0, 2.0, 3.0, 4.0]]}
    assert data_main(["convert", "--from", "refcoco", refs, instances, "--split", "train", "--proposals",
                      str(detections), "--out", str(tmp_path / "set2"), "--no-progress"]) == 1
    assert "no detection for image 9" in capsys.readouterr().err
    assert data_main(["convert", "--from", "refcoco", refs, "--split", "val", "--out", str(tmp_path / "s3")]) == 1
    assert "takes REFS.p INSTANCES.json" in capsys.readouterr().err
    assert data_main(["convert", "--from", "gqa", refs, "--proposals", str(detections), "--out",
                      str(tmp_path / "s4")]) == 1
    assert "--proposals applies to --from refcoco" in capsys.readouterr().err
