"""`vlengine finetune --task vcr` / `vlengine evaluate` through the real commands, on a 24-image embedded
corpus whose multiple-choice questions are written as VCR's train/val.jsonl and converted with --from vcr
(vlengine/tasks/downstream/embedded_vcr.py).

- 2 ranks (gloo, ZeRO-2): a run stopped at step 3 and continued by the same command ends with exactly the
  uninterrupted run's weights and held-out Q->A / QA->R / Q->AR.
- The fine-tuned export carries its VCR settings: `vlengine evaluate --checkpoint` alone reproduces the
  run's metrics and writes the leaderboard CSV.
- eval.question_only_baseline trains the text-only baseline and the summary prints the three gaps.
"""

from __future__ import annotations

import csv
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
    from vlengine.tasks.downstream.embedded_vcr import ensure_embedded_vcr
    sets = ensure_embedded_vcr(corpus)
    (train, images), (val, val_images) = sets["train"], sets["val"]
    values = {
        "task": {"name": "vcr", "vcr_subtasks": "both", "vcr_loss": "softmax", "region_class_weight": 0.5,
                 "head_lr_multiplier": 10.0},
        "model": {"preset": "tiny", "vocab_size": "auto", "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                  "intermediate_size": 64, "region_feature_size": 2048, "geometry_frequencies": 8,
                  "num_region_classes": 126, "max_position_embeddings": 64,
                  "hidden_dropout": 0.1},   # dropout: the RNG state must resume too
        "data": {"train": train, "val": val, "images": images, "val_images": val_images,
                 "vocab": os.path.join(corpus, "vocab.txt"), "max_text_len": 24},
        "deepspeed": {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1,
                      "zero_optimization": {"stage": 2}},
        "train": {"total_steps": TOTAL_STEPS, "warmup_steps": 1, "lr": 1e-3, "log_every": 1, "save_every": 2,
                  "seed": 3, "threads": 1},
        "eval": {"batch_size": 4},
    }
    path = tmp_path_factory.mktemp("config") / "finetune_vcr_tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_two_ranks_stopped_and_continued_end_exactly_like_the_uninterrupted_run(config, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    output = _finetune(config, out, "--set", "train.max_steps=3")     # between two checkpoints (save_every 2)
    assert "vcr: " in output and " train examples" in output and "2 rank(s)" in output
    assert _results(out)["final_step"] == 3
    assert "resuming from step 3 of 6" in _finetune(config, out)
    resumed, (_, reference) = _results(out), uninterrupted
    assert (resumed["final_step"], resumed["eval"]) == (TOTAL_STEPS, reference["eval"])
    assert set(reference["eval"]) == {"vcr_q_a", "vcr_qa_r", "vcr_q_ar"}
    weights = reference["weights"]
    assert {"head.1.weight", "region_classes.classifier.weight"} <= set(weights) == set(resumed["weights"])
    assert [name for name in weights if not torch.equal(resumed["weights"][name], weights[name])] == []


def test_evaluate_reproduces_the_run_and_writes_the_leaderboard_csv(uninterrupted, tmp_path):
    out, reference = uninterrupted
    final = os.path.join(out, "eval", f"val_step{TOTAL_STEPS:09d}")
    with open(f"{final}_metrics.json") as f:
        metrics = json.load(f)["metrics"]
    assert metrics["q_ar"] == reference["eval"]["vcr_q_ar"] and metrics["q_ar_right"] <= metrics["q_a_right"]
    with open(os.path.join(out, "config.yaml")) as f:
        data = yaml.safe_load(f)["data"]
    codes, output = vlengine("evaluate", "--checkpoint", os.path.join(out, "model_fp32.safetensors"), "--split",
                             data["val"], "--images", data["val_images"], "--out", str(tmp_path), "--name", "again")
    assert codes == [0] and "vcr_q_ar" in output, output
    with open(tmp_path / "again_metrics.json") as f:
        assert json.load(f)["metrics"] == metrics
    with open(tmp_path / "again_predictions.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["annot_id", "answer_0"] and len(rows) == metrics["n"] + 1 and len(rows[0]) == 21


def test_the_text_only_baseline_is_printed_beside_the_three_accuracies(config, tmp_path):
    output = _finetune(config, str(tmp_path / "run"), "--set", "eval.question_only_baseline=true",
                       "--set", "train.max_steps=2", world=1)
    assert "image and grounding removed (text-only baseline)" in output
    assert "fine-tuning vcr, text only (image and grounding removed)" in output
    for key in ("vcr_q_a", "vcr_qa_r", "vcr_q_ar"):
        assert f"held-out {key}: " in output
    assert set(_results(str(tmp_path / "run-text-only"))["eval"]) == {"vcr_q_a", "vcr_qa_r", "vcr_q_ar"}


def test_end_to_end_from_the_stores_images_and_evaluated_from_the_export_alone(config, tmp_path):
    """model.visual: the tiny trunk reads the corpus store's JPEGs through the fused RoIAlign; the export
    carries the front-end's architecture and the image settings, so `vlengine evaluate` rebuilds it."""
    with open(config) as f:
        values = yaml.safe_load(f)
    values["model"].update(region_feature_size=32, visual={"trunk": "tiny", "width": 8, "out_features": 32})
    values["data"].update(image_normalisation="torchvision")
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(values))
    out = str(tmp_path / "run")
    _finetune(str(path), out, "--set", "train.max_steps=2", world=1)
    with open(os.path.join(out, "eval", "val_step000000002_metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    weights = _results(out)["weights"]
    assert any(name.startswith("backbone.visual.trunk.") for name in weights)
    assert _evaluated_again(out, values["data"], tmp_path) == metrics


def test_an_end_to_end_model_for_another_task_is_refused_before_anything_runs(config, tmp_path):
    codes, output = vlengine("finetune", "--config", config, "--task", "vqa", "--set",
                             "model.region_feature_size=32", "--set",
                             "model.visual={trunk: tiny, width: 8, out_features: 32}", "--output-dir",
                             str(tmp_path / "run"))
    assert codes == [2] and "model.visual (end to end from raw images) is wired for tasks refcoco and vcr" in output, output
    assert "Traceback" not in output


def test_a_q_a_and_a_qa_r_model_evaluated_together_give_q_ar_and_the_csv(config, tmp_path):
    """VL-BERT and R2C train one model per sub-task: `--rationale-checkpoint` combines them."""
    with open(config) as f:
        data = yaml.safe_load(f)["data"]
    runs = {}
    for subtask in ("q_a", "qa_r"):
        runs[subtask] = str(tmp_path / subtask)
        _finetune(config, runs[subtask], "--set", f"task.vcr_subtasks={subtask}", "--set", "train.max_steps=1",
                  world=1)
    export = {k: os.path.join(v, "model_fp32.safetensors") for k, v in runs.items()}
    args = ("--split", data["val"], "--images", data["val_images"], "--out", str(tmp_path), "--name", "both")
    codes, output = vlengine("evaluate", "--checkpoint", export["q_a"], "--rationale-checkpoint", export["qa_r"], *args)
    assert codes == [0] and "vcr_q_ar" in output, output
    with open(tmp_path / "both_metrics.json") as f:
        metrics = json.load(f)["metrics"]
    with open(os.path.join(runs["q_a"], "eval", "val_step000000001_metrics.json")) as f:
        assert json.load(f)["metrics"]["q_a"] == metrics["q_a"]          # the Q->A model's own answers
    with open(os.path.join(runs["qa_r"], "eval", "val_step000000001_metrics.json")) as f:
        assert json.load(f)["metrics"]["qa_r"] == metrics["qa_r"]        # the QA->R model's rationales
    assert (tmp_path / "both_predictions.csv").is_file()
    codes, output = vlengine("evaluate", "--checkpoint", export["qa_r"], "--rationale-checkpoint", export["q_a"], *args)
    assert codes == [2] and "goes with a VCR Q->A model" in output and "Traceback" not in output, output


@pytest.mark.parametrize("stage", [1, 3])
def test_end_to_end_exports_every_tensor_under_zero_1_and_3(config, tmp_path, stage):
    """ZeRO-1 merges only the optimizer's parameters (the frozen stem and res2 come from the module state);
    ZeRO-3 has no single model-states file: both exports rebuild the model in `vlengine evaluate`."""
    with open(config) as f:
        values = yaml.safe_load(f)
    values["model"].update(region_feature_size=32, visual={"trunk": "tiny", "width": 8, "out_features": 32})
    values["deepspeed"]["zero_optimization"] = {"stage": stage}
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(values))
    out = str(tmp_path / "run")
    _finetune(str(path), out, "--set", "train.max_steps=2")
    weights = _results(out)["weights"]
    assert "backbone.visual.trunk.conv1.weight" in weights          # frozen stem: in the export all the same
    with open(os.path.join(out, "eval", "val_step000000002_metrics.json")) as f:
        assert _evaluated_again(out, values["data"], tmp_path) == json.load(f)["metrics"]
