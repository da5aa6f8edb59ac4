"""Official annotation files -> annotation sets: VQA v2, GQA, NLVR2 and Karpathy splits, written
small in each official format; malformed records fail naming the file and the record."""

import json
import os
import pickle

import numpy as np
import pytest

from vlengine.data.annotations import AnnotationFormatError, AnnotationWriter, open_annotations
from vlengine.data.cli import main as data_main
from vlengine.data.convert.annotation_base import convert_annotations
from vlengine.data.convert.base import ConversionError
from vlengine.data.convert.gqa import GqaSource
from vlengine.data.convert.karpathy import KarpathySource
from vlengine.data.convert.nlvr2 import Nlvr2Source
from vlengine.data.convert.vqa import VqaSource
from vlengine.data.store import StoreWriter
from vlengine.metrics.gqa import gqa_accuracy
from vlengine.metrics.nlvr2 import nlvr2_metrics
from vlengine.metrics.vqa import AnswerVocab, vqa_accuracy


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def vqa_files(tmp_path, questions=None, annotations=None):
    questions = questions if questions is not None else [
        {"image_id": 42, "question": "What color is the dog?", "question_id": 420},
        {"image_id": 42, "question": "How many dogs?", "question_id": 421},
        {"image_id": 7, "question": "Is it raining?", "question_id": 70}]
    answers = {420: ["brown"] * 7 + ["tan"] * 3, 421: ["2"] * 4 + ["two"] * 6, 70: ["no"] * 10}
    types = {420: ("other", "what color is the"), 421: ("number", "how many"), 70: ("yes/no", "is it")}
    annotations = annotations if annotations is not None else [
        {"question_id": q, "image_id": 42 if q != 70 else 7, "answer_type": types[q][0], "question_type": types[q][1],
         "multiple_choice_answer": a[0],
         "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": i + 1} for i, x in enumerate(a)]}
        for q, a in answers.items()]
    q = write_json(tmp_path / "questions.json", {"data_subtype": "val2014", "task_type": "Open-Ended",
                                                 "questions": questions})
    a = write_json(tmp_path / "annotations.json", {"annotations": annotations})
    return q, a


def test_vqa_questions_and_annotations(tmp_path):
    q, a = vqa_files(tmp_path)
    out = convert_annotations(VqaSource(q, a, image_id_template="COCO_{data_subtype}_{image_id:012d}"),
                              str(tmp_path / "vqa"), progress=False)
    aset = open_annotations(out)
    assert aset.task == "vqa" and len(aset) == 3
    r = aset[1]
    assert r["id"] == "421" and r["question_id"] == 421 and r["text"] == "How many dogs?"
    assert r["images"] == ["COCO_val2014_000000000042"] and r["image_id"] == 42
    assert r["answers"] == ["2"] * 4 + ["two"] * 6 and r["answer_type"] == "number"
    assert aset.index_of("70") == 2 and aset[-1]["id"] == "70"
    # the records feed the official metric and the answer vocabulary directly
    assert vqa_accuracy({420: "brown", 421: "2", 70: "no"}, list(aset))["overall"] == 100.0
    assert vqa_accuracy({420: "tan", 421: "two", 70: "No"}, list(aset))["perQuestion"] == {420: 90.0, 421: 100.0, 70: 0.0}
    assert AnswerVocab.build(aset, min_count=1).answers == ["2", "brown", "no"]
    # a test split: questions only
    test = open_annotations(convert_annotations(VqaSource(q), str(tmp_path / "test"), progress=False))
    assert "answers" not in test[0] and test[0]["images"] == ["42"]


@pytest.mark.parametrize("edit, message", [
    (lambda qs, an: qs[1].pop("image_id"), "questions.json: question 1 (question_id 421): missing 'image_id'"),
    (lambda qs, an: qs[0].update(question=None), "questions.json: question 0 (question_id 420): 'question' must be str"),
    (lambda qs, an: qs[2].update(question_id=True), "questions.json: question 2: 'question_id' must be int/str"),
    (lambda qs, an: an[0]["answers"][3].pop("answer"), "annotations.json: annotation 0 (question_id 420): answer 3: missing 'answer'"),
    (lambda qs, an: an.pop(1), "questions.json: question 1 (question_id 421): no annotation in"),
    (lambda qs, an: qs.pop(2), "1 annotations have no question in"),
    (lambda qs, an: an[2].update(image_id=8), "question 2 (question_id 70): image_id 7 differs from its annotation's"),
    (lambda qs, an: an.append(dict(an[0])), "annotation 3 (question_id 420): question_id 420 is annotated twice"),
])
def test_vqa_malformed_records(tmp_path, edit, message):
    q, a = vqa_files(tmp_path)
    qs, an = json.load(open(q))["questions"], json.load(open(a))["annotations"]
    edit(qs, an)
    q, a = vqa_files(tmp_path, qs, an)
    with pytest.raises(ConversionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert_annotations(VqaSource(q, a), str(tmp_path / "out"), progress=False)
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")


def test_vqa_truncated_file_and_bad_template(tmp_path):
    q, a = vqa_files(tmp_path)
    (tmp_path / "questions.json").write_text(open(q).read()[:50])
    with pytest.raises(ConversionError, match="questions.json: not valid JSON"):
        convert_annotations(VqaSource(q, a), str(tmp_path / "out"), progress=False)
    with pytest.raises(ValueError, match="unknown: \\['split'\\]"):
        VqaSource(q, a, image_id_template="{split}_{image_id}")


def test_gqa_balanced_questions(tmp_path):
    questions = {
        "201307251": {"imageId": "n161313", "question": "Is it overcast?", "answer": "no", "fullAnswer": "No, it is clear.",
                      "isBalanced": True, "types": {"structural": "verify", "semantic": "global", "detailed": "weatherVerify"}},
        "20021": {"imageId": "2354786", "question": "What is the man holding?", "answer": "racket",
                  "isBalanced": True, "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}}}
    path = write_json(tmp_path / "testdev_balanced_questions.json", questions)
    aset = open_annotations(convert_annotations(GqaSource(path), str(tmp_path / "gqa"), progress=False))
    assert [r["id"] for r in aset] == ["201307251", "20021"] and aset[1]["images"] == ["2354786"]
    assert aset[0]["answer"] == "no" and aset[0]["types"]["structural"] == "verify"
    out = gqa_accuracy({"201307251": "no", "20021": "ball"}, {r["id"]: r for r in aset})
    assert out["accuracy"] == 50.0 and out["binary"] == 100.0 and out["open"] == 0.0
    del questions["20021"]["imageId"]
    write_json(tmp_path / "testdev_balanced_questions.json", questions)
    with pytest.raises(ConversionError, match="testdev_balanced_questions.json: question 20021: missing 'imageId'"):
        convert_annotations(GqaSource(path), str(tmp_path / "gqa2"), progress=False)
    write_json(tmp_path / "testdev_balanced_questions.json", [1, 2])
    with pytest.raises(ConversionError, match="expected a JSON object keyed by question id"):
        convert_annotations(GqaSource(path), str(tmp_path / "gqa3"), progress=False)


def nlvr2_line(identifier, sentence="There are two dogs.", label="True", **extra):
    return json.dumps({"identifier": identifier, "sentence": sentence, "label": label, "writer": "103",
                       "left_url": "http://x/l.jpg", "right_url": "http://x/r.jpg", "synset": "dog", **extra})


def test_nlvr2_json_lines(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text("\n".join([nlvr2_line("dev-850-0-0"), nlvr2_line("dev-850-1-0", label="False"),
                               nlvr2_line("dev-851-2-1", sentence="One bird.", label="false")]) + "\n\n")
    aset = open_annotations(convert_annotations(Nlvr2Source([str(path)]), str(tmp_path / "n"), progress=False))
    assert len(aset) == 3
    r = aset[1]
    assert r["images"] == ["dev-850-1-img0", "dev-850-1-img1"] and r["label"] is False and r["identifier"] == "dev-850-1-0"
    assert aset[2]["text"] == "One bird." and aset[2]["label"] is False
    out = nlvr2_metrics({"dev-850-0-0": True, "dev-850-1-0": True, "dev-851-2-1": "False"}, list(aset))
    assert out["accuracy"] == pytest.approx(2 / 3) and out["consistency"] == 0.5


@pytest.mark.parametrize("line, message", [
    (nlvr2_line("dev-850-1-0", label="yes"), "dev.json line 2 \\(dev-850-1-0\\): 'label' must be \"True\" or \"False\""),
    ('{"identifier": "dev-850-1-0", "sentence": ', "dev.json line 2: not valid JSON"),
    (nlvr2_line("dev-850-1"), "dev.json line 2 \\(dev-850-1\\): identifier is not split-set-pair-sentence"),
    (json.dumps({"identifier": "dev-850-1-0", "label": "True"}), "dev.json line 2 \\(dev-850-1-0\\): missing 'sentence'"),
    (nlvr2_line("dev-850-0-0"), "dev.json line 2 \\(dev-850-0-0\\): duplicate id 'dev-850-0-0'"),
])
def test_nlvr2_malformed_lines(tmp_path, line, message):
    path = tmp_path / "dev.json"
    path.write_text(nlvr2_line("dev-850-0-0") + "\n" + line + "\n")
    with pytest.raises(ConversionError, match=message):
        convert_annotations(Nlvr2Source([str(path)]), str(tmp_path / "n"), progress=False)


def karpathy_file(tmp_path, images=None):
    def image(name, split, n):
        number = int(name[-8:-4])
        return {"filename": name, "filepath": "val2014", "split": split, "imgid": number, "cocoid": number,
                "sentences": [{"raw": f"{name} caption {j}.", "tokens": [], "sentid": number * 10 + j}
                              for j in range(n)]}
    images = images if images is not None else [
        image("COCO_val2014_000000000001.jpg", "test", 5), image("COCO_val2014_000000000002.jpg", "train", 5),
        image("COCO_val2014_000000000003.jpg", "test", 6), image("COCO_val2014_000000000004.jpg", "restval", 5)]
    return write_json(tmp_path / "dataset_coco.json", {"images": images, "dataset": "coco"})


def test_karpathy_splits(tmp_path):
    path = karpathy_file(tmp_path)
    aset = open_annotations(convert_annotations(KarpathySource(path, ["test"]), str(tmp_path / "t"), progress=False))
    assert aset.task == "retrieval" and len(aset) == 11  # 5 + 6 captions
    assert aset.extra("images") == ["COCO_val2014_000000000001", "COCO_val2014_000000000003"]
    assert [r["image_index"] for r in aset] == [0] * 5 + [1] * 6
    assert aset[6]["id"] == "31" and aset[6]["sentid"] == 31
    assert aset[5]["text"] == "COCO_val2014_000000000003.jpg caption 0." and aset[5]["images"] == ["COCO_val2014_000000000003"]
    five = open_annotations(convert_annotations(KarpathySource(path, ["test"], max_captions=5), str(tmp_path / "t5"),
                                                progress=False))
    assert len(five) == 10
    train = open_annotations(convert_annotations(KarpathySource(path, ["train", "restval"]), str(tmp_path / "tr"),
                                                 progress=False))
    assert train.extra("images") == ["COCO_val2014_000000000002", "COCO_val2014_000000000004"]
    with pytest.raises(ValueError, match="splits must be among"):
        KarpathySource(path, ["testing"])
    broken = json.load(open(path))
    del broken["images"][2]["sentences"][1]["raw"]
    karpathy_file(tmp_path, broken["images"])
    with pytest.raises(ConversionError, match=r"dataset_coco.json: image 2 \(COCO_val2014_000000000003.jpg\) sentence 1: "
                                              r"missing 'raw'"):
        convert_annotations(KarpathySource(path, ["test"]), str(tmp_path / "t2"), progress=False)


def tiny_store(path, image_ids):
    with StoreWriter(str(path), feature_dim=4) as w:
        for image_id in image_ids:
            w.add_image(image_id, np.zeros((1, 4)), (10, 10), features=np.zeros((1, 4)))
    return str(path)


def test_cli_converts_and_checks_images_against_a_store(tmp_path, capsys):
    q, a = vqa_files(tmp_path)
    store = tiny_store(tmp_path / "feats", ["COCO_val2014_000000000042", "COCO_val2014_000000000007"])
    args = ["convert", "--from", "vqa", q, a, "--image-id-template", "COCO_{data_subtype}_{image_id:012d}",
            "--images", store, "--no-progress"]
    assert data_main(args + ["--out", str(tmp_path / "v")]) == 0
    aset = open_annotations(str(tmp_path / "v"))
    assert len(aset) == 3
    from vlengine.data.store import open_store
    assert aset.image_indices(open_store(store)).tolist() == [[0], [0], [1]]
    with pytest.raises(KeyError, match="record 2 \\(70\\): image 'COCO_val2014_000000000007' is not in the store"):
        aset.image_indices(open_store(tiny_store(tmp_path / "feats1", ["COCO_val2014_000000000042"])))
    assert data_main(args + ["--out", str(tmp_path / "v")]) == 1          # exists
    assert "already exists" in capsys.readouterr().err
    small = tiny_store(tmp_path / "feats2", ["COCO_val2014_000000000042"])
    assert data_main(["convert", "--from", "vqa", q, a, "--image-id-template", "COCO_{data_subtype}_{image_id:012d}",
                      "--images", small, "--out", str(tmp_path / "v2"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "questions.json: question 2 (question_id 70): image 'COCO_val2014_000000000007' is not in the store" in err
    path = karpathy_file(tmp_path)
    assert data_main(["convert", "--from", "karpathy", path, "--out", str(tmp_path / "k"), "--no-progress"]) == 1
    assert "needs --split" in capsys.readouterr().err
    assert data_main(["convert", "--from", "karpathy", path, "--split", "test", "--max-captions-per-image", "5",
                      "--out", str(tmp_path / "k"), "--no-progress"]) == 0
    assert len(open_annotations(str(tmp_path / "k"))) == 10
    assert data_main(["convert", "--from", "gqa", path, "--vocab", "v.txt", "--out", str(tmp_path / "g")]) == 1
    assert "--vocab apply to region stores, not to --from gqa" in capsys.readouterr().err


def test_annotation_set_integrity(tmp_path):
    with AnnotationWriter(str(tmp_path / "s"), "nlvr2") as w:
        for i in range(5):
            w.add({"id": f"x{i}", "images": ["a", "b"], "text": f"sentence {i}\nwith a newline é", "label": i % 2 == 0})
    aset = open_annotations(str(tmp_path / "s"), verify="full")
    assert aset[3]["text"] == "sentence 3\nwith a newline é" and aset[4]["label"] is True
    again = pickle.loads(pickle.dumps(aset))
    assert again.path == aset.path and again[2] == aset[2]
    with pytest.raises(IndexError):
        aset[5]
    records = tmp_path / "s" / "records.jsonl"
    data = bytearray(records.read_bytes())
    data[10] ^= 0x01
    records.write_bytes(bytes(data))
    open_annotations(str(tmp_path / "s"))  # the size still matches: only the full check sees it
    with pytest.raises(AnnotationFormatError, match="records.jsonl: sha256 checksum mismatch"):
        open_annotations(str(tmp_path / "s"), verify="full")
    records.write_bytes(bytes(data[:-3]))
    with pytest.raises(AnnotationFormatError, match="records.jsonl: size .* index says"):
        open_annotations(str(tmp_path / "s"))
    with pytest.raises(ValueError, match="record 0: 'images' must be a non-empty list"):
        with AnnotationWriter(str(tmp_path / "bad"), "vqa") as w:
            w.add({"id": "1", "images": [], "text": "q"})
    assert not os.path.exists(tmp_path / "bad.partial") and not os.path.exists(tmp_path / "bad")
    empty = AnnotationWriter(str(tmp_path / "empty"), "gqa").close()
    assert len(open_annotations(empty)) == 0
