"""The embedded corpus's downstream sets written in the official formats (VQA v2, Karpathy) and converted
with the converters users run (vlengine/tasks/downstream/embedded_sets.py)."""

import json
import os

import pytest

from vlengine.data.annotations import open_annotations
from vlengine.data.corpus import build_embedded_corpus
from vlengine.data.store import open_store
from vlengine.metrics.vqa_normalize import normalize_answer
from vlengine.tasks.downstream.embedded_sets import ensure_embedded_retrieval, ensure_embedded_vqa


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=1, num_train=30,
                                 num_heldout=20, num_text_documents=2)


def test_the_questions_as_vqa_v2_official_files_converted_like_a_users(corpus):
    """Each record names its own image of the store (the template maps image ids to it); answers are in the
    evaluator's normal form, as VQA v2's released answers are ("4", not "four")."""
    sets = ensure_embedded_vqa(corpus)
    assert ensure_embedded_vqa(corpus) == sets      # built once
    rows = [json.loads(line) for line in open(os.path.join(corpus, "downstream", "vqa_heldout.jsonl"))]
    held = open_store(os.path.join(corpus, "heldout"))
    annotations = open_annotations(sets["heldout"])
    assert len(annotations) == len(rows)
    images = annotations.image_indices(held)[:, 0]
    types = set()
    for i, row in enumerate(rows):
        record = annotations[i]
        assert record["text"] == row["question"] and record["answers"] == [normalize_answer(row["answer"])] * 10
        assert images[i] == row["image_index"]
        types.add(record["answer_type"])
        assert record["answer_type"] == ("yes/no" if row["answer"] in ("yes", "no") else
                                         "number" if row["question"].startswith("how many") else "other")
        if record["answer_type"] == "number":
            assert record["multiple_choice_answer"].isdigit()
    assert types == {"yes/no", "number", "other"}


def test_the_retrieval_split_as_karpathy_json(corpus):
    sets = ensure_embedded_retrieval(corpus)
    (train, train_store), (test, test_store) = sets["train"], sets["test"]
    train_set, test_set = open_annotations(train), open_annotations(test)
    assert len(train_set) == 5 * 30 and len(test_set) == 5 * 20        # every caption of its images
    store = open_store(test_store)
    for i in range(len(test_set)):
        record = test_set[i]
        caption = store.caption(i)
        assert record["text"] == caption["text"]
        assert store.index_of(record["images"][0]) == caption["image_index"]
