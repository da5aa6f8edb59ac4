"""The embedded corpus's multiple-choice task in VCR's official format, converted with ``--from vcr``.

One question per scene about one of its objects, written as VCR writes it (``{train,val}.jsonl``: token
lists mixing words and lists of detection indices; ``objects`` the detections' class names):

    question    ["what", "colour", "is", "the", [d], "?"]          -> "what colour is the circle ?"
    answers     [[d], "is", <colour>] x 4: the object's colour and three others, in random order
    rationales  ["unlike", "the", [e], "which", "is", <colour>] x 4: another object of the scene, of a
                different colour, with its colour and three others (never the answer's), in random order

The detection's class name is its shape only (shapes are unique within a scene), so the text names the
objects but never their colours: a text-only model is at chance (25%) on both sub-tasks, and what the
image adds is exactly the gap. QA->R here is a second grounded reading (the rationale's object, not the
question's), not a justification as VCR's rationales are: the task checks the mechanics (four sequences,
grounded mentions, the conditioning on the answer), and geometric rationales ("left of the [e]") were
not learned within the no-argument run's budget. Detection d is the corpus store's region d + 1 (region 0
is the whole image, as in ``--from vcr-images`` stores), so the converted set reads the corpus store
directly (its precomputed features, or its images through the visual front-end). A scene whose objects
all share one colour has no question.
"""

from __future__ import annotations

import json
import os

import numpy as np

from vlengine.data.corpus.scenes import COLOURS, SHAPES, SIZES, SceneObject

from .embedded_sets import built_once

SPLITS = {"train": "train", "heldout": "val"}    # corpus split -> VCR split
SETS_VERSION = 2


def _scene_object(label: int, box) -> SceneObject:
    """The scene object a store region describes (its class is shape x colour x size, ``scenes.class_of``)."""
    shape, rest = divmod(int(label), len(COLOURS) * len(SIZES))
    colour, size = divmod(rest, len(SIZES))
    return SceneObject(shape, colour, size, tuple(float(v) for v in box), (0, 0, 0))


def _shuffled(right, others: list, rng: np.random.Generator) -> tuple[list, int]:
    """``right`` and three of ``others`` in random order, and where ``right`` went."""
    picks = [others[i] for i in rng.choice(len(others), 3, replace=False)]
    order = [right] + picks
    perm = rng.permutation(4)
    return [order[i] for i in perm], int(np.nonzero(perm == 0)[0][0])


def question_of(record: dict, rng: np.random.Generator) -> dict | None:
    """The VCR row of one store record (None when all its objects share one colour)."""
    objects = [_scene_object(record["labels"][r], record["boxes"][r]) for r in range(1, record["num_boxes"])]
    colours = [o.words[1] for o in objects]
    pairs = [(d, e) for d in range(len(objects)) for e in range(len(objects)) if colours[d] != colours[e]]
    if not pairs:
        return None
    d, e = pairs[int(rng.integers(len(pairs)))]
    answers, answer_label = _shuffled(colours[d], [c for c in COLOURS if c != colours[d]], rng)
    rationales, rationale_label = _shuffled(colours[e], [c for c in COLOURS if c not in (colours[d], colours[e])],
                                            rng)
    image_id = record["image_id"]
    return {"annot_id": f"{image_id}-q0", "img_fn": f"{image_id}.jpg", "metadata_fn": f"{image_id}.json",
            "objects": [o.words[2] for o in objects],
            "question": ["what", "colour", "is", "the", [d], "?"],
            "answer_choices": [[[d], "is", c] for c in answers],
            "rationale_choices": [["unlike", "the", [e], "which", "is", c] for c in rationales],
            "answer_label": answer_label, "rationale_label": rationale_label}


def _vcr_file(corpus_dir: str, split: str, out_path: str, seed: int) -> None:
    from vlengine.data.store import open_store

    store = open_store(os.path.join(corpus_dir, split))
    with open(out_path, "w", encoding="utf-8") as f:
        for index in range(len(store)):
            rng = np.random.default_rng([seed, list(SPLITS).index(split), index])
            row = question_of(store.image(index), rng)
            if row is not None:
                f.write(json.dumps(row) + "\n")


def ensure_embedded_vcr(corpus_dir: str, seed: int = 0) -> dict[str, tuple[str, str]]:
    """{"train" | "val": (annotation set, store)} of the corpus's multiple-choice questions (built on first use)."""
    from vlengine.data.convert.annotation_base import convert_annotations
    from vlengine.data.convert.vcr import VcrSource

    out = os.path.abspath(corpus_dir).rstrip(os.sep) + f"-vcr-v{SETS_VERSION}-seed{seed}"
    stores = {vcr_split: os.path.join(corpus_dir, split) for split, vcr_split in SPLITS.items()}

    def build(work: str) -> None:
        for split, vcr_split in SPLITS.items():
            path = os.path.join(work, "official", f"{vcr_split}.jsonl")
            _vcr_file(corpus_dir, split, path, seed)
            convert_annotations(VcrSource([path]), os.path.join(work, f"vcr-{vcr_split}"), images=stores[vcr_split],
                                progress=False)

    built_once(out, build)
    return {split: (os.path.join(out, f"vcr-{split}"), store) for split, store in stores.items()}
