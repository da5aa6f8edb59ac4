"""RefCOCO+ on a tiny VL-BERT: the grounding dataset's items (candidates, IoU with the ground truth, the
geometry-only baseline's zeroed features), the detected-box track's proposals, the region score head with
each loss learning a toy set, and the split scored end to end (metrics JSON with its IoU settings,
chance level, submission file)."""

import json

import numpy as np
import pytest
import torch

from vlengine.data.store import StoreWriter, open_store
from vlengine.tasks.downstream import GroundingDataset, GroundingModel, collate_for
from vlengine.tasks.downstream.score_split import headline, score_split

from downstream_files import FEATURE_DIM, refcoco_set, tokenizer
from test_downstream_heads import tiny_backbone, train_steps

COLOURS = ("red", "blue", "two")   # words of the test vocabulary; feature k of a region says "colour k"
# region 0 is the whole image (inclusive pixels of a 120 x 100 image), then three objects
BOXES = np.array([[0, 0, 119, 99], [10, 10, 39, 39], [50, 10, 79, 39], [10, 50, 39, 89]], np.float32)


def scene_store(tmp_path, count: int = 6):
    """Image i: object r (1..3) coloured (i + r) % 3 (feature k = 1 for colour k)."""
    with StoreWriter(str(tmp_path / "scenes"), feature_dim=FEATURE_DIM) as w:
        for i in range(count):
            feats = np.zeros((4, FEATURE_DIM), np.float32)
            for region in (1, 2, 3):
                feats[region, (i + region) % 3] = 1.0
            w.add_image(f"img{i}", BOXES, (100, 120), features=feats, labels=np.zeros(4, np.int64))
    return open_store(str(tmp_path / "scenes"))


def coco(box):
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def scene_set(tmp_path, store, count: int = 6, regions=(1, 2, 3), **kwargs):
    """The objects ``regions`` of every image, each named by its colour."""
    objects = []
    for i in range(count):
        for region in regions:
            objects.append((f"img{i}", coco(BOXES[region]), [f"the {COLOURS[(i + region) % 3]} cat"]))
    return refcoco_set(tmp_path, store, objects, **kwargs)


@pytest.fixture
def toy(tmp_path):
    store = scene_store(tmp_path)
    return GroundingDataset(scene_set(tmp_path, store), store, tokenizer(tmp_path), max_text_len=16)


@pytest.fixture
def top_left(tmp_path):
    """Expressions that all refer to the top-left object: learnable in a few steps from the geometry (a
    fresh VL-BERT's regions start blind to the text: its visual LayerNorms start at 0)."""
    store = scene_store(tmp_path)
    return GroundingDataset(scene_set(tmp_path, store, regions=(1,)), store, tokenizer(tmp_path), max_text_len=16)


def test_items_mark_the_candidates_and_the_ground_truth(toy, tmp_path):
    item = toy[0]        # "the blue cat" in image 0: region 1 has colour (0 + 1) % 3 = 1
    assert toy.record(0)["text"] == "the blue cat"
    assert item["candidate_mask"].tolist() == [False, True, True, True]     # the whole image is context only
    assert item["region_iou"][1] == 1.0 and item["region_iou"][2] == 0.0
    assert 0 < item["region_iou"][0] < 0.5 and item["region_hit"].tolist() == [False, True, False, False]
    assert item["features"][1, 1] == 1.0
    np.testing.assert_array_equal(toy.gt_box(0), BOXES[1])
    geometry_only = GroundingDataset(toy.annotations, toy.store, toy.tokenizer, region_features=False)
    zeroed = geometry_only[0]
    assert not zeroed["features"].any() and np.array_equal(zeroed["boxes"], item["boxes"])
    batch = collate_for(toy)([toy[i] for i in range(4)])
    assert batch.extras["candidate_mask"].shape == batch.region_valid.shape == (4, 4)
    assert batch.extras["region_iou"].dtype == torch.float32 and batch.extras["region_hit"].sum() == 4


def test_the_detected_track_scores_only_the_store_regions_of_the_detections(tmp_path):
    store = scene_store(tmp_path, count=2)
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps([{"image_id": i, "box": coco(BOXES[r])} for i in (0, 1) for r in (1, 3)]))
    aset = scene_set(tmp_path, store, count=2, proposals=str(detections))
    tok = tokenizer(tmp_path)
    data = GroundingDataset(aset, store, tok, track="detected")
    assert data[0]["candidate_mask"].tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match=r"carries detected proposals .*\(task.track: detected\)"):
        GroundingDataset(aset, store, tok, track="gt")
    detections.write_text(json.dumps([{"image_id": i, "box": [1, 1, 5, 5]} for i in (0, 1)]))
    (tmp_path / "refs").mkdir()
    other = scene_set(tmp_path / "refs", store, count=2, proposals=str(detections))
    with pytest.raises(ValueError, match="image 'img0' has no region with the detected box \\[1.0, 1.0, 6.0, 6.0\\]"):
        GroundingDataset(other, store, tok, track="detected")


@pytest.mark.parametrize("loss", ["bce", "ce"])
@pytest.mark.parametrize("head", ["transform", "linear"])
def test_the_region_scores_learn_a_toy_set_and_never_choose_a_non_candidate(top_left, head, loss):
    model = GroundingModel(tiny_backbone(top_left.tokenizer), head=head, loss=loss)
    batch = collate_for(top_left)([top_left[i] for i in range(len(top_left))])
    before = model.predict(batch)
    losses, out = train_steps(model, batch, steps=25, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses
    assert out.metrics["refcoco_acc"] == 1.0
    chosen = model.predict(batch)
    assert bool(batch.extras["candidate_mask"].gather(1, chosen[:, None]).all())
    assert bool(batch.extras["candidate_mask"].gather(1, before[:, None]).all())
    assert isinstance(model.head.transform, torch.nn.Identity) == (head == "linear")


def test_a_split_scored_end_to_end_reports_its_settings_chance_and_submission(top_left, tmp_path):
    toy = top_left
    model = GroundingModel(tiny_backbone(toy.tokenizer))
    train_steps(model, collate_for(toy)([toy[i] for i in range(len(toy))]), steps=25, lr=3e-3)
    metrics = score_split(model, toy, "refcoco", batch_size=4, out_dir=str(tmp_path / "eval"), name="val")
    assert metrics["accuracy"] == 100.0 and metrics["count"] == len(toy) == 6
    assert metrics["chance_accuracy"] == pytest.approx(100 / 3) and metrics["upper_bound"] == 100.0
    assert (metrics["iou_convention"], metrics["iou_comparison"], metrics["track"]) == ("plus_one", ">=", "gt")
    assert headline("refcoco", metrics) == {"refcoco_acc": 100.0, "refcoco_chance_acc": pytest.approx(100 / 3),
                                            "refcoco_upper_bound": 100.0}
    written = json.loads((tmp_path / "eval" / "val_metrics.json").read_text())
    assert written["metrics"]["iou_comparison"] == ">=" and written["task"] == "refcoco"
    submission = json.loads((tmp_path / "eval" / "val_predictions.json").read_text())
    assert submission[0] == {"sent_id": "0", "box": coco(BOXES[1])}
    strict = GroundingDataset(toy.annotations, toy.store, toy.tokenizer, iou_convention="continuous",
                              iou_comparison=">")
    assert score_split(model, strict, "refcoco", batch_size=4)["iou_convention"] == "continuous"


def test_the_embedded_corpus_expressions_are_refer_files_whose_boxes_are_store_regions(tmp_path):
    import os

    from vlengine.data import load_tokenizer
    from vlengine.data.corpus import build_embedded_corpus
    from vlengine.data.convert.refcoco import load_refs
    from vlengine.tasks.downstream.embedded_sets import ensure_embedded_refcoco

    corpus = build_embedded_corpus(str(tmp_path / "c"), seed=1, num_train=10, num_heldout=6, num_text_documents=1)
    sets = ensure_embedded_refcoco(corpus)
    assert ensure_embedded_refcoco(corpus) == sets                                  # built once
    official = os.path.join(os.path.dirname(sets["val"][0]), "official")
    refs = load_refs(os.path.join(official, "refs(unc).p"))                         # the refusing unpickler reads it
    assert {r["split"] for r in refs} == {"train", "val"}
    data = GroundingDataset(*sets["val"], load_tokenizer(os.path.join(corpus, "vocab.txt")))
    with open(os.path.join(corpus, "downstream", "refexp_heldout.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert len(data) == len(rows) > 0
    for i, row in enumerate(rows):
        item = data[i]
        assert data.record(i)["text"] == row["expression"] and item["image_index"] == row["image_index"]
        assert item["region_iou"][row["region"]] == 1.0 and item["candidate_mask"][row["region"]]
        assert not item["candidate_mask"][0]                                         # the whole image
