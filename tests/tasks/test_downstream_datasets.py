"""The downstream datasets on small files in the official formats (through the converters) and a tiny
region store: items, targets, collated batches, and the errors a user meets."""

import pickle

import numpy as np
import pytest
import torch

from vlengine.batch import IGNORE_INDEX
from vlengine.metrics.vqa import AnswerVocab
from vlengine.models import VLBert, VLConfig
from vlengine.tasks.downstream import (AnswerModel, GqaDataset, Nlvr2Dataset, RetrievalDataset, VqaDataset,
                                       collate_downstream, collate_for)

from downstream_files import gqa_set, karpathy_set, nlvr2_set, region_store, tokenizer, vqa_set

VQA_QUESTIONS = [(420, 42, "What color is the dog?", ["red"] * 7 + ["blue"] * 3),
                 (421, 42, "How many dogs are there?", ["2"] * 2 + ["two"] * 2 + ["one"] * 6),
                 (70, 7, "Is it raining?", ["no"] * 10)]


def test_vqa_items_targets_and_batch(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042", "COCO_val2014_000000000007"])
    aset = vqa_set(tmp_path, VQA_QUESTIONS)
    from vlengine.data.annotations import open_annotations
    assert sorted(AnswerVocab.build(open_annotations(aset), min_count=1).answers) == ["2", "no", "red"]
    vocab = AnswerVocab(["red", "blue", "2", "1", "no"])
    ds = VqaDataset(aset, store, tok, vocab, answer_slot=True, max_regions=3)
    assert len(ds) == 3 and ds.example_id(2) == 70 and ds.num_answers == len(vocab)
    item = ds[(5, 1)]                          # the loader's (epoch, index) key
    ids = item["input_ids"]
    # [CLS] question [SEP] [MASK] [SEP], the slot in segment B
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and ids[item["answer_slot"]] == tok.mask_id
    assert item["answer_slot"] == len(ids) - 2 and ids[-3] == tok.sep_id
    assert item["token_type_ids"][-2:].tolist() == [1, 1] and item["token_type_ids"][:-2].max() == 0
    assert item["image_index"] == 0 and item["boxes"].shape[0] <= 3
    np.testing.assert_array_equal(item["features"], store.image(0)["features"][:item["boxes"].shape[0]])
    # soft targets: "2" and "two" normalise to one answer (4 of 10 -> 1.0), "one" to "1" (6 -> 1.0)
    idx, scores = item["answer_targets"]
    got = {vocab.answers[i]: float(s) for i, s in zip(idx, scores)}
    assert got == pytest.approx({"2": 1.0, "1": 1.0})
    batch = collate_downstream([ds[i] for i in range(3)], num_answers=len(vocab))
    assert batch.input_ids.shape[0] == 3 and batch.token_type_ids.shape == batch.input_ids.shape
    assert batch.extras["example_index"].tolist() == [0, 1, 2]
    assert batch.extras["answer_scores"].shape == (3, len(vocab))
    assert batch.extras["answer_scores"][0, vocab.index["red"]] == pytest.approx(1.0)
    assert batch.extras["answer_scores"][0, vocab.index["blue"]] == pytest.approx(0.9)
    slots = batch.extras["answer_slot"]
    assert (batch.input_ids[torch.arange(3), slots] == tok.mask_id).all()
    assert batch.region_features.shape[-1] == 32 and batch.region_valid.any(1).all()
    # the pooled-output heads read the question alone
    plain = VqaDataset(aset, store, tok, vocab, answer_slot=False)[0]
    assert "answer_slot" not in plain and tok.mask_id not in plain["input_ids"].tolist()


def test_vqa_test_split_and_errors(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042"])
    aset = vqa_set(tmp_path, [(1, 42, "Is it raining?", None)])
    ds = VqaDataset(aset, store, tok, AnswerVocab(["yes", "no"]))
    assert ds[0]["answer_targets"][0].size == 0
    assert collate_downstream([ds[0]], num_answers=2).extras["answer_scores"].sum() == 0
    with pytest.raises(IndexError, match="vqa example 1 out of range"):
        ds[1]
    (tmp_path / "m").mkdir()
    missing = vqa_set(tmp_path / "m", [(1, 43, "Is it?", None)])
    with pytest.raises(KeyError, match="image 'COCO_val2014_000000000043' is not in the store"):
        VqaDataset(missing, store, tok, AnswerVocab(["yes"]))
    with pytest.raises(ValueError, match="holds task 'vqa', this dataset reads 'gqa'"):
        GqaDataset(aset, store, tok, AnswerVocab(["yes"]))
    with pytest.raises(ValueError, match="max_text_len must be >= 4"):
        VqaDataset(aset, store, tok, AnswerVocab(["yes"]), max_text_len=3)


def test_vqa_long_question_keeps_its_answer_slot(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042"])
    aset = vqa_set(tmp_path, [(1, 42, "what color is the dog " * 10, ["red"] * 10)])
    item = VqaDataset(aset, store, tok, AnswerVocab(["red"]), max_text_len=8)[0]
    assert len(item["input_ids"]) == 8 and item["input_ids"][item["answer_slot"]] == tok.mask_id


def test_gqa_answers_as_classes(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["n1", "n2"])
    aset = gqa_set(tmp_path, {"201": ("n1", "What color is the cat?", "red"), "202": ("n2", "Is it a dog?", "no"),
                              "203": ("n2", "What is it?", "horse")})
    vocab = AnswerVocab.from_strings(["red", "no", "no"])
    ds = GqaDataset(aset, store, tok, vocab, answer_slot=False)
    assert [ds.example_id(i) for i in range(3)] == ["201", "202", "203"]
    batch = collate_downstream([ds[i] for i in range(3)], num_answers=len(vocab))
    assert batch.extras["answer_label"].tolist() == [vocab.index["red"], vocab.index["no"], IGNORE_INDEX]
    assert batch.extras["answer_scores"].tolist() == [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def test_nlvr2_two_rows_per_example(tmp_path):
    tok = tokenizer(tmp_path)
    ids = ["dev-850-0-img0", "dev-850-0-img1", "dev-850-1-img0", "dev-850-1-img1"]
    store = region_store(tmp_path, ids)
    aset = nlvr2_set(tmp_path, [("dev-850-0-0", "The left image has more birds.", "True"),
                                ("dev-850-1-0", "The left image has more birds.", "False")])
    ds = Nlvr2Dataset(aset, store, tok)
    assert ds.example_id(1) == "dev-850-1-0"
    batch = collate_downstream([ds[0], ds[1]])
    # rows 2i and 2i + 1: (image 0, sentence) and (image 1, sentence) of example i
    assert batch.batch_size == 4 and batch.extras["image_index"].tolist() == [0, 1, 2, 3]
    assert torch.equal(batch.input_ids[0], batch.input_ids[1])
    assert batch.extras["label"].tolist() == [1, 0] and batch.extras["example_index"].tolist() == [0, 1]
    assert (batch.token_type_ids == 0).all()


def test_retrieval_captions_and_images(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["1000", "1001", "1002"])
    aset = karpathy_set(tmp_path, {"1002.jpg": ["a red cat.", "a cat."], "1000.jpg": ["two dogs.", "a dog.", "dogs."]})
    ds = RetrievalDataset(aset, store, tok)
    assert len(ds) == 5 and ds.num_images == 2 and ds.text_to_image.tolist() == [0, 0, 1, 1, 1]
    pair = ds[3]
    assert pair["itm_label"] == 1 and pair["image_index"] == store.index_of("1000")
    image = ds.image_item(0)          # images in the order of the set's "images" extra
    assert image["image_index"] == store.index_of("1002") and image["example_index"] == 0
    assert image["input_ids"].tolist() == [tok.cls_id, tok.sep_id]
    texts = collate_downstream([ds.caption_item(i) for i in range(len(ds))])
    assert texts.region_boxes is None and texts.batch_size == 5


def test_question_only_baseline_and_worker_pickling(tmp_path):
    tok = tokenizer(tmp_path)
    store = region_store(tmp_path, ["COCO_val2014_000000000042", "COCO_val2014_000000000007"])
    aset = vqa_set(tmp_path, VQA_QUESTIONS)
    vocab = AnswerVocab(["red", "blue", "2", "1", "no"])
    ds = VqaDataset(aset, store, tok, vocab)
    # DataLoader workers get the dataset pickled: paths, not mapped files
    clone = pickle.loads(pickle.dumps(ds))
    for key in ("input_ids", "features", "boxes", "token_type_ids"):
        np.testing.assert_array_equal(clone[1][key], ds[1][key])
    collate = pickle.loads(pickle.dumps(collate_for(ds)))
    with_image = collate([ds[i] for i in range(3)])
    blind = VqaDataset(aset, store, tok, vocab, with_image=False)
    batch = collate([blind[i] for i in range(3)])
    # the same text and targets, no regions: every row is a text-only row
    assert batch.region_boxes is None and batch.text_only.all() and not with_image.text_only.any()
    assert torch.equal(batch.input_ids, with_image.input_ids)
    assert torch.equal(batch.extras["answer_scores"], with_image.extras["answer_scores"])
    torch.manual_seed(0)
    model = AnswerModel(VLBert(VLConfig.tiny(vocab_size=tok.vocab_size, region_feature_size=32)), len(vocab))
    assert model.logits(batch).shape == (3, len(vocab))
