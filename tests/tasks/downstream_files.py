"""Small downstream inputs for the tests: a tokenizer, a region store, and annotation sets written
in each official format (VQA v2, GQA, NLVR2, Karpathy, RefCOCO's refer files) and converted with the converters."""

from __future__ import annotations

import json
import pickle

import numpy as np

from vlengine.data.convert.annotation_base import convert_annotations
from vlengine.data.convert.gqa import GqaSource
from vlengine.data.convert.karpathy import KarpathySource
from vlengine.data.convert.nlvr2 import Nlvr2Source
from vlengine.data.convert.refcoco import RefcocoSource
from vlengine.data.convert.vqa import VqaSource
from vlengine.data.store import StoreWriter, open_store
from vlengine.data.text import load_tokenizer, write_vocab

FEATURE_DIM = 32
WORDS = ("what color is the dog how many dogs are there is it raining a red blue cat two one yes no "
         "left image has more birds than right picture of sitting on grass man riding horse").split()


def tokenizer(tmp_path):
    return load_tokenizer(write_vocab(WORDS, str(tmp_path / "vocab.txt")))


def region_store(tmp_path, image_ids, seed: int = 0, max_boxes: int = 5, name: str = "store"):
    """A store with random boxes and features for ``image_ids``; image i's features carry i (a
    learnable signal: feature 0 of every box is i / len)."""
    rng = np.random.default_rng(seed)
    with StoreWriter(str(tmp_path / name), feature_dim=FEATURE_DIM) as w:
        for i, image_id in enumerate(image_ids):
            k = int(rng.integers(2, max_boxes + 1))
            xy = rng.uniform(0, 60, (k, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(2, 30, (k, 2))], 1)
            feats = rng.standard_normal((k, FEATURE_DIM)).astype(np.float32)
            feats[:, 0] = i / max(1, len(image_ids))
            w.add_image(image_id, boxes, (100, 120), features=feats, labels=rng.integers(0, 17, k))
    return open_store(str(tmp_path / name))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def vqa_set(tmp_path, questions):
    """``questions``: [(question_id, image_id int, question, [10 answers] or None)] -> annotation set path."""
    qs = [{"image_id": img, "question": q, "question_id": qid} for qid, img, q, _ in questions]
    q = _write(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json",
               {"data_subtype": "val2014", "task_type": "Open-Ended", "questions": qs})
    a = None
    if questions[0][3] is not None:
        anns = [{"question_id": qid, "image_id": img, "answer_type": "other", "question_type": "what",
                 "multiple_choice_answer": answers[0],
                 "answers": [{"answer": x, "answer_confidence": "yes", "answer_id": j + 1}
                             for j, x in enumerate(answers)]}
                for qid, img, _, answers in questions]
        a = _write(tmp_path / "v2_mscoco_val2014_annotations.json", {"annotations": anns})
    source = VqaSource(q, a, image_id_template="COCO_{data_subtype}_{image_id:012d}")
    return convert_annotations(source, str(tmp_path / "vqa_set"), progress=False)


def gqa_set(tmp_path, questions):
    """``questions``: {question id: (image id, question, answer)} -> annotation set path."""
    data = {qid: {"imageId": img, "question": q, "answer": a, "fullAnswer": a, "isBalanced": True,
                  "types": {"structural": "query", "semantic": "attr", "detailed": "color"}}
            for qid, (img, q, a) in questions.items()}
    path = _write(tmp_path / "testdev_balanced_questions.json", data)
    return convert_annotations(GqaSource(path), str(tmp_path / "gqa_set"), progress=False)


def nlvr2_set(tmp_path, examples):
    """``examples``: [(identifier, sentence, "True"/"False")] -> annotation set path."""
    path = tmp_path / "dev.json"
    path.write_text("\n".join(json.dumps({"identifier": i, "sentence": s, "label": lab, "left_url": "l",
                                          "right_url": "r", "writer": "1"}) for i, s, lab in examples) + "\n")
    return convert_annotations(Nlvr2Source([str(path)]), str(tmp_path / "nlvr2_set"), progress=False)


def karpathy_set(tmp_path, captions_per_image, split: str = "test"):
    """``captions_per_image``: {file name: [captions]} -> annotation set path (every image in ``split``)."""
    images = [{"filename": name, "split": split, "sentences": [{"raw": c, "tokens": [], "sentid": 100 * i + j}
                                                                for j, c in enumerate(caps)]}
              for i, (name, caps) in enumerate(captions_per_image.items())]
    path = _write(tmp_path / "dataset_flickr30k.json", {"images": images, "dataset": "flickr30k"})
    return convert_annotations(KarpathySource(path, [split]), str(tmp_path / "karpathy_set"), progress=False)


def refer_files(tmp_path, refs: list, annotations: list, images: list | None = None) -> tuple[str, str]:
    """The refer toolkit's ``refs(unc).p`` (a real pickle, protocol 2 as Python 2 wrote it) and COCO's
    ``instances.json``."""
    refs_path = tmp_path / "refs(unc).p"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    return str(refs_path), _write(tmp_path / "instances.json", {"images": images or [], "annotations": annotations})


def refcoco_set(tmp_path, store, objects, split: str = "val", proposals: str | None = None):
    """``objects``: [(image id str, box [x, y, w, h], [expressions])], one ref each -> annotation set path
    (COCO image ids are the positions of the distinct image ids; the store names images by file stem)."""
    image_ids = sorted({image for image, _, _ in objects})
    refs, annotations, sent_id = [], [], 0
    for ref_id, (image, box, sentences) in enumerate(objects):
        coco_id = image_ids.index(image)
        annotations.append({"id": 1000 + ref_id, "image_id": coco_id, "bbox": list(box), "category_id": 1})
        refs.append({"ref_id": ref_id, "ann_id": 1000 + ref_id, "image_id": coco_id, "category_id": 1, "split": split,
                     "sentences": [{"sent": s, "raw": s, "tokens": s.split(), "sent_id": sent_id + k}
                                   for k, s in enumerate(sentences)]})
        sent_id += len(sentences)
    refs_path, instances = refer_files(tmp_path, refs, annotations,
                                       [{"id": i, "file_name": f"{name}.jpg"} for i, name in enumerate(image_ids)])
    source = RefcocoSource(refs_path, instances, [split], image_id_template="{file_stem}", proposals=proposals)
    return convert_annotations(source, str(tmp_path / f"refcoco_{split}"), images=store.path, progress=False)
