"""`vlengine finetune --task refcoco` / `vlengine evaluate` through the real commands, on a 24-image
embedded corpus whose referring expressions are written as the refer toolkit's refs(unc).p + COCO's
instances.json and converted with --from refcoco (vlengine/tasks/downstream/embedded_sets.py).

- 2 ranks (gloo): a run stopped at step 3 and continued by the same command ends with exactly the
  uninterrupted run's weights and held-out grounding metrics.
- The fine-tuned export carries the task's IoU settings: `vlengine evaluate --checkpoint` alone
  reproduces the run's accuracy and writes the boxes file; the metrics JSON names the settings.
- eval.question_only_baseline trains the geometry-only baseline (region features zeroed) and the summary
  prints both beside the exact chance level of a random candidate.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

# fixtures too: `corpus` (24 train images, 12 held out) and `uninterrupted` (a 2-rank run of this module's config)
from test_finetune import _evaluated_again, _finetune, _results, corpus, uninterrupted, vlengine   # noqa: F401

TOTAL_STEPS = 6


@pytest.fixture(scope="module")
def config(corpus, tmp_path_factory) -> str:
    from vlengine.tasks.downstream.embedded_sets import ensure_embedded_refcoco
    sets = ensure_embedded_refcoco(corpus)
    (train, images), (val, val_images) = sets["train"], sets["val"]
    values = {
        "task": {"name": "refcoco", "region_head": "transform", "loss": "bce", "track": "gt",
                 "iou_convention": "continuous", "iou_comparison": ">", "head_lr_multiplier": 10.0},
        "model": {"preset": "tiny", "vocab_size": "auto", "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                  "intermediate_size": 64, "region_feature_size": 2048, "geometry_frequencies": 8,
                  "max_position_embeddings": 64, "hidden_dropout": 0.1},   # dropout: the RNG state must resume too
        "data": {"train": train, "val": val, "images": images, "val_images": val_images,
                 "vocab": os.path.join(corpus, "vocab.txt"), "max_text_len": 16},
        "deepspeed": {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1,
                      "zero_optimization": {"stage": 1}},
        "train": {"total_steps": TOTAL_STEPS, "warmup_steps": 1, "lr": 1e-3, "log_every": 1, "save_every": 2,
                  "seed": 3, "threads": 1},
        "eval": {"batch_size": 16},
    }
    path = tmp_path_factory.mktemp("config") / "finetune_refcoco_tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_two_ranks_stopped_and_continued_end_exactly_like_the_uninterrupted_run(config, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    output = _finetune(config, out, "--set", "train.max_steps=3")     # between two checkpoints (save_every 2)
    assert "refcoco: 48 train examples, 24 val" in output and "2 rank(s)" in output
    assert _results(out)["final_step"] == 3
    assert "resuming from step 3 of 6" in _finetune(config, out)
    resumed, (_, reference) = _results(out), uninterrupted
    assert (resumed["final_step"], resumed["eval"]) == (TOTAL_STEPS, reference["eval"])
    assert {"refcoco_acc", "refcoco_chance_acc"} <= set(reference["eval"])
    weights = reference["weights"]
    assert {"head.scorer.weight", "head.transform.dense.weight"} <= set(weights) == set(resumed["weights"])
    assert [name for name in weights if not torch.equal(resumed["weights"][name], weights[name])] == []


def test_evaluate_reproduces_the_run_with_the_checkpoints_own_iou_settings(uninterrupted, tmp_path):
    out, reference = uninterrupted
    final = os.path.join(out, "eval", f"val_step{TOTAL_STEPS:09d}")
    with open(f"{final}_metrics.json") as f:
        metrics = json.load(f)["metrics"]
    assert (metrics["iou_convention"], metrics["iou_comparison"], metrics["track"]) == ("continuous", ">", "gt")
    assert metrics["count"] == 24 and metrics["accuracy"] == reference["eval"]["refcoco_acc"]
    with open(f"{final}_predictions.json") as f:
        boxes = json.load(f)
    assert len(boxes) == 24 and set(boxes[0]) == {"sent_id", "box"}
    with open(os.path.join(out, "config.yaml")) as f:
        data = yaml.safe_load(f)["data"]
    codes, output = vlengine("evaluate", "--checkpoint", os.path.join(out, "model_fp32.safetensors"), "--split",
                             data["val"], "--images", data["val_images"], "--out", str(tmp_path), "--name", "again")
    assert codes == [0] and "refcoco_acc" in output, output
    with open(tmp_path / "again_metrics.json") as f:
        again = json.load(f)["metrics"]
    assert again == metrics
    with open(tmp_path / "again_predictions.json") as f:
        assert json.load(f) == boxes


def test_the_geometry_only_baseline_and_the_chance_level_are_printed_beside_the_accuracy(config, tmp_path):
    output = _finetune(config, str(tmp_path / "run"), "--set", "eval.question_only_baseline=true",
                       "--set", "train.max_steps=2", world=1)
    assert "region features zeroed, boxes kept (geometry-only baseline)" in output
    assert "fine-tuning refcoco, geometry only (region features zeroed)" in output
    assert "choosing a random candidate region" in output and "geometry only: " in output
    baseline = _results(str(tmp_path / "run-geometry-only"))["eval"]
    assert set(baseline) == {"refcoco_acc", "refcoco_chance_acc", "refcoco_upper_bound"}
    assert baseline["refcoco_upper_bound"] == 100.0      # the ground-truth track: every referent is a candidate


def test_end_to_end_grounding_from_the_stores_images_and_evaluated_from_the_export_alone(config, tmp_path):
    """model.visual: the tiny trunk reads the corpus store's JPEGs; IoUs stay those of the store's boxes;
    `vlengine evaluate` rebuilds the front-end from the export and reproduces the metrics."""
    with open(config) as f:
        values = yaml.safe_load(f)
    values["model"].update(region_feature_size=32, visual={"trunk": "tiny", "width": 8, "out_features": 32})
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(values))
    out = str(tmp_path / "run")
    output = _finetune(str(path), out, "--set", "train.max_steps=2", "--set", "eval.question_only_baseline=true",
                       world=1)
    assert "fine-tuning refcoco, geometry only" in output
    with open(os.path.join(out, "eval", "val_step000000002_metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    assert metrics["upper_bound"] == 100.0 and metrics["count"] == 24
    assert any(name.startswith("backbone.visual.head.") for name in _results(out)["weights"])
    assert _evaluated_again(out, values["data"], tmp_path) == metrics
