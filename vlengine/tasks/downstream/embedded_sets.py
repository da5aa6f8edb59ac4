"""The embedded corpus's downstream sets in the official formats, converted like anyone's.

VQA v2: the corpus writes ``downstream/vqa_{split}.jsonl`` (one exact answer per question). Each split
becomes the two files VQA v2 ships (``v2_OpenEnded_mscoco_{split}_questions.json`` and
``v2_mscoco_{split}_annotations.json``, the one answer given by all ten annotators). Answer types
follow VQA's three (yes/no, number, other).

Retrieval: Karpathy's ``dataset_*.json`` with every train image and its 5 captions (split "train") and
the first RETRIEVAL_IMAGES held-out images (split "test", a tenth of Flickr30K's 1K x 5K test).

RefCOCO+: the corpus writes ``downstream/refexp_{split}.jsonl`` (an expression naming one object, its
store region and box). Both splits become the refer toolkit's two files: ``refs(unc).p`` (a pickle, as
the real one; split "train" and the held-out "val"; the expressions of one object form one ref) and
COCO's ``instances.json`` (every object of those images as an annotation, ``bbox`` [x1, y1, x2 - x1,
y2 - y1] of the store's inclusive-pixel box, so the ground-truth box is exactly one store region: the
ground-truth-box track). COCO image ids are the image's index (held-out: + HELDOUT_IMAGE_ID_OFFSET);
``file_name`` is the store's image id, which ``--image-id-template {file_stem}`` reads back.

All go through ``vlengine data convert``'s converters (--from vqa, --from karpathy, --from refcoco), so a
run reads exactly what a user's run on the real files reads. The sets live beside the corpus
(``<corpus>-vqa-v2/``, ``<corpus>-retrieval-v2/``, ``<corpus>-refcoco-v2/``: the corpus folder itself is
checksummed by its MANIFEST), built once and atomically (a ``.partial`` folder renamed when complete).
"""

from __future__ import annotations

import json
import os
import shutil

from vlengine.data.corpus.grammar import COUNT_WORDS

SPLITS = ("train", "heldout")
IMAGE_ID_TEMPLATE = "{data_subtype}-{image_id:06d}"   # the corpus store's image names, e.g. train-000012
SETS_VERSION = 2        # in the folder names: a change to what is written here rebuilds the sets
RETRIEVAL_IMAGES = 100                                 # held-out images of the retrieval test (x 5 captions)
REFCOCO_SPLITS = {"train": "train", "heldout": "val"}   # corpus split -> the refs' split
HELDOUT_IMAGE_ID_OFFSET = 1_000_000                    # COCO image ids are unique across splits


def _answer_type(answer: str) -> str:
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer in COUNT_WORDS else "other"


def _official_files(corpus_dir: str, split: str, out_dir: str) -> tuple[str, str]:
    from vlengine.metrics.vqa_normalize import normalize_answer

    from vlengine.data.store import open_store

    store = open_store(os.path.join(corpus_dir, split))
    questions, annotations = [], []
    with open(os.path.join(corpus_dir, "downstream", f"vqa_{split}.jsonl"), encoding="utf-8") as f:
        for qid, line in enumerate(f):
            row = json.loads(line)
            # the store's image name is "<split>-<index>": its number is the image id
            image_id = int(store.image_id(row["image_index"]).rsplit("-", 1)[1])
            question_id = qid  # unique within the split, as VQA v2 question ids are
            questions.append({"image_id": image_id, "question": row["question"], "question_id": question_id})
            # VQA v2's released answers are already in the evaluator's normal form ("2", not "two"): a
            # unanimous question is compared without normalisation, so a word-form count could never match
            # a prediction from the (normalised) answer vocabulary.
            answer = normalize_answer(row["answer"])
            annotations.append({"question_id": question_id, "image_id": image_id,
                                "question_type": " ".join(row["question"].split()[:2]),
                                "answer_type": _answer_type(row["answer"]), "multiple_choice_answer": answer,
                                "answers": [{"answer": answer, "answer_confidence": "yes", "answer_id": k + 1}
                                            for k in range(10)]})
    q_path = os.path.join(out_dir, f"v2_OpenEnded_mscoco_{split}_questions.json")
    a_path = os.path.join(out_dir, f"v2_mscoco_{split}_annotations.json")
    with open(q_path, "w", encoding="utf-8") as f:
        json.dump({"data_subtype": split, "task_type": "Open-Ended", "questions": questions}, f)
    with open(a_path, "w", encoding="utf-8") as f:
        json.dump({"data_subtype": split, "annotations": annotations}, f)
    return q_path, a_path


def _karpathy_file(corpus_dir: str, out_dir: str) -> str:
    """Karpathy's JSON of the corpus: every train image (split "train"), the first RETRIEVAL_IMAGES
    held-out images (split "test")."""
    from vlengine.data.store import open_store

    images = []
    for split, karpathy_split, limit in (("train", "train", None), ("heldout", "test", RETRIEVAL_IMAGES)):
        store = open_store(os.path.join(corpus_dir, split))
        captions: dict[int, list[str]] = {}
        for i in range(len(store.captions)):
            caption = store.caption(i)
            image = int(caption["image_index"])
            if limit is not None and image >= limit:
                break  # the corpus writes captions image by image
            captions.setdefault(image, []).append(caption["text"])
        images += [{"filename": f"{store.image_id(j)}.jpg", "split": karpathy_split,
                    "sentences": [{"raw": text} for text in captions[j]]} for j in sorted(captions)]
    path = os.path.join(out_dir, "dataset_embedded.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"dataset": "embedded", "images": images}, f)
    return path


def built_once(out: str, build) -> None:
    """Run ``build(work_dir)`` into ``out`` unless it exists: a .partial folder renamed when complete."""
    if os.path.isdir(out):
        return
    work = out + ".partial"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "official"))
    try:
        build(work)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def ensure_embedded_vqa(corpus_dir: str) -> dict[str, str]:
    """{split: annotation set folder} of the corpus's questions (built on first use)."""
    from vlengine.data.convert.annotation_base import convert_annotations
    from vlengine.data.convert.vqa import VqaSource

    out = os.path.abspath(corpus_dir).rstrip(os.sep) + f"-vqa-v{SETS_VERSION}"

    def build(work: str) -> None:
        for split in SPLITS:
            q_path, a_path = _official_files(corpus_dir, split, os.path.join(work, "official"))
            convert_annotations(VqaSource(q_path, a_path, image_id_template=IMAGE_ID_TEMPLATE),
                                os.path.join(work, f"vqa-{split}"), images=os.path.join(corpus_dir, split),
                                progress=False)

    built_once(out, build)
    return {split: os.path.join(out, f"vqa-{split}") for split in SPLITS}


def ensure_embedded_retrieval(corpus_dir: str) -> dict[str, tuple[str, str]]:
    """{"train" | "test": (annotation set, region store)} of the corpus's retrieval sets (built on first use)."""
    from vlengine.data.convert.annotation_base import convert_annotations
    from vlengine.data.convert.karpathy import KarpathySource

    out = os.path.abspath(corpus_dir).rstrip(os.sep) + f"-retrieval-v{SETS_VERSION}"
    stores = {"train": os.path.join(corpus_dir, "train"), "test": os.path.join(corpus_dir, "heldout")}

    def build(work: str) -> None:
        karpathy = _karpathy_file(corpus_dir, os.path.join(work, "official"))
        for split, store in stores.items():
            convert_annotations(KarpathySource(karpathy, [split]), os.path.join(work, f"retrieval-{split}"),
                                images=store, progress=False)

    built_once(out, build)
    return {split: (os.path.join(out, f"retrieval-{split}"), store) for split, store in stores.items()}


def _refer_files(corpus_dir: str, out_dir: str) -> tuple[str, str]:
    """The refer toolkit's ``refs(unc).p`` and COCO's ``instances.json`` of the corpus's expressions."""
    import pickle

    from vlengine.data.store import open_store

    refs, annotations, images, next_sent_id = [], [], [], 0
    for split, ref_split in REFCOCO_SPLITS.items():
        store = open_store(os.path.join(corpus_dir, split))
        offset = HELDOUT_IMAGE_ID_OFFSET if split == "heldout" else 0
        by_object: dict[tuple[int, int], dict] = {}
        with open(os.path.join(corpus_dir, "downstream", f"refexp_{split}.jsonl"), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                image, region = int(row["image_index"]), int(row["region"])
                ref = by_object.get((image, region))
                if ref is None:
                    ref = by_object[(image, region)] = {
                        "ref_id": len(refs), "ann_id": (offset + image) * 100 + region, "image_id": offset + image,
                        "split": ref_split, "category_id": int(store.image(image)["labels"][region]),
                        "sentences": []}
                    refs.append(ref)
                ref["sentences"].append({"sent": row["expression"], "raw": row["expression"],
                                         "tokens": row["expression"].split(), "sent_id": next_sent_id})
                next_sent_id += 1
        for image in sorted({image for image, _ in by_object}):
            record = store.image(image)
            height, width = (int(v) for v in record["image_size"])
            images.append({"id": offset + image, "file_name": f"{record['image_id']}.jpg", "height": height,
                           "width": width})
            for region in range(1, record["num_boxes"]):   # region 0 is the whole image, not an object
                x1, y1, x2, y2 = (float(v) for v in record["boxes"][region])
                annotations.append({"id": (offset + image) * 100 + region, "image_id": offset + image,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": int(record["labels"][region])})
    refs_path, instances_path = os.path.join(out_dir, "refs(unc).p"), os.path.join(out_dir, "instances.json")
    with open(refs_path, "wb") as f:
        pickle.dump(refs, f, protocol=2)   # the protocol Python 2 wrote the real file with
    with open(instances_path, "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": annotations}, f)
    return refs_path, instances_path


def ensure_embedded_refcoco(corpus_dir: str) -> dict[str, tuple[str, str]]:
    """{"train" | "val": (annotation set, region store)} of the corpus's referring expressions, converted
    with ``--from refcoco`` (the ground-truth-box track; built on first use)."""
    from vlengine.data.convert.annotation_base import convert_annotations
    from vlengine.data.convert.refcoco import RefcocoSource

    out = os.path.abspath(corpus_dir).rstrip(os.sep) + f"-refcoco-v{SETS_VERSION}"
    stores = {ref_split: os.path.join(corpus_dir, split) for split, ref_split in REFCOCO_SPLITS.items()}

    def build(work: str) -> None:
        refs, instances = _refer_files(corpus_dir, os.path.join(work, "official"))
        for split, store in stores.items():
            convert_annotations(RefcocoSource(refs, instances, [split], image_id_template="{file_stem}"),
                                os.path.join(work, f"refcoco-{split}"), images=store, progress=False)

    built_once(out, build)
    return {split: (os.path.join(out, f"refcoco-{split}"), store) for split, store in stores.items()}
