"""The embedded corpus's questions as VQA v2: official-format files, converted like anyone's.

The corpus writes ``downstream/vqa_{split}.jsonl`` (one exact answer per question). Here each split
becomes the two files VQA v2 ships (``v2_OpenEnded_mscoco_{split}_questions.json`` and
``v2_mscoco_{split}_annotations.json``, the one answer given by all ten annotators), and those go
through ``vlengine data convert --from vqa``'s converter, so the fine-tuning run reads exactly what a
user's VQA v2 run reads. Answer types follow VQA's three (yes/no, number, other).

The sets live beside the corpus (``<corpus>-vqa/``, the corpus folder itself is checksummed by its
MANIFEST), are built once and atomically (a ``.partial`` folder renamed when complete).
"""

from __future__ import annotations

import json
import os
import shutil

from .grammar import COUNT_WORDS

SPLITS = ("train", "heldout")
IMAGE_ID_TEMPLATE = "{data_subtype}-{image_id:06d}"   # the corpus store's image names, e.g. train-000012


def _answer_type(answer: str) -> str:
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer in COUNT_WORDS else "other"


def _official_files(corpus_dir: str, split: str, out_dir: str) -> tuple[str, str]:
    from ..store import open_store

    store = open_store(os.path.join(corpus_dir, split))
    questions, annotations = [], []
    with open(os.path.join(corpus_dir, "downstream", f"vqa_{split}.jsonl"), encoding="utf-8") as f:
        for qid, line in enumerate(f):
            row = json.loads(line)
            # the store's image name is "<split>-<index>": its number is the image id
            image_id = int(store.image_id(row["image_index"]).rsplit("-", 1)[1])
            question_id = qid  # unique within the split, as VQA v2 question ids are
            questions.append({"image_id": image_id, "question": row["question"], "question_id": question_id})
            answer = row["answer"]
            annotations.append({"question_id": question_id, "image_id": image_id,
                                "question_type": " ".join(row["question"].split()[:2]),
                                "answer_type": _answer_type(answer), "multiple_choice_answer": answer,
                                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": k + 1}
                                            for k in range(10)]})
    q_path = os.path.join(out_dir, f"v2_OpenEnded_mscoco_{split}_questions.json")
    a_path = os.path.join(out_dir, f"v2_mscoco_{split}_annotations.json")
    with open(q_path, "w", encoding="utf-8") as f:
        json.dump({"data_subtype": split, "task_type": "Open-Ended", "questions": questions}, f)
    with open(a_path, "w", encoding="utf-8") as f:
        json.dump({"data_subtype": split, "annotations": annotations}, f)
    return q_path, a_path


def embedded_vqa_dir(corpus_dir: str) -> str:
    return os.path.abspath(corpus_dir).rstrip(os.sep) + "-vqa"


def ensure_embedded_vqa(corpus_dir: str) -> dict[str, str]:
    """{split: annotation set folder} of the corpus's questions (built on first use)."""
    from ..convert.annotation_base import convert_annotations
    from ..convert.vqa import VqaSource

    out = embedded_vqa_dir(corpus_dir)
    sets = {split: os.path.join(out, f"vqa-{split}") for split in SPLITS}
    if os.path.isdir(out):
        return sets
    work = out + ".partial"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "official"))
    try:
        for split in SPLITS:
            q_path, a_path = _official_files(corpus_dir, split, os.path.join(work, "official"))
            convert_annotations(VqaSource(q_path, a_path, image_id_template=IMAGE_ID_TEMPLATE),
                                os.path.join(work, f"vqa-{split}"), images=os.path.join(corpus_dir, split),
                                progress=False)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return sets
