"""VL-BERT end to end from a config: raw images in the loader, model.visual building the front-end, the
objective's masked RoIs reaching it, gradients to the trainable stages only, the run's evaluation with
the masking leak (a masked region's class from vision alone beside chance)."""

import math
import os

import numpy as np
import pytest
import torch

from vlengine._config import ConfigError

os.environ.setdefault("DS_ACCELERATOR", "cpu")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_E2E_MODEL = {"preset": "tiny", "vocab_size": "auto", "num_region_classes": "auto", "hidden_size": 32,
                  "num_heads": 2, "intermediate_size": 64, "num_layers": 2,
                  "visual": {"trunk": "tiny", "width": 4, "out_features": 16, "mask_mode": "pixels"}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=3, num_train=48,
                                 num_heldout=24, num_text_documents=4)


def _values(corpus, tmp_path, model=None, data=None) -> dict:
    return {"recipe": "vlbert", "model": model or TINY_E2E_MODEL, "objective": {"itm_weight": 1.0, "region_visual_ln_init": 1.0},
            "masking": {"region_targets": "hard"},
            "data": {"corpus": corpus, "images": True, "text_ratio": 1.0, "text_batch_size": 2,
                     "itm_negative_prob": 0.5, **(data or {})},
            "deepspeed": {"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0,
                          "zero_optimization": {"stage": 0}},
            "train": {"total_steps": 3, "warmup_steps": 1, "lr": 1e-3, "log_every": 1, "output_dir": str(tmp_path),
                      "export_safetensors": False, "save_every": 0},
            "eval": {"captions": 16, "retrieval_images": 4}}


def _config(corpus, tmp_path, **changes):
    from vlengine.training.config import PretrainConfig
    return PretrainConfig.from_dict(_values(corpus, tmp_path, **changes))


def test_raw_image_loader_yields_normalised_images_and_no_features(corpus, tmp_path):
    from vlengine.training.data_setup import make_train_loader, resolve_data

    cfg = _config(corpus, tmp_path)
    batch = next(make_train_loader(cfg.data, resolve_data(cfg.data), 4, seed=0, rank=0, world=1))
    assert batch.region_features is None
    rows = batch.image_rows
    assert batch.images.shape[1:] == (3, 128, 128) and batch.images.dtype == torch.float32
    assert batch.images[rows].abs().sum() > 0 and batch.images[~rows].abs().sum() == 0   # text-only rows: blank
    assert abs(float(batch.images[rows].mean())) < 2.0                                 # normalised, not 0-255
    boxes = batch.region_boxes[batch.region_valid]
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= 127                        # the image's pixels
    assert torch.equal(batch.region_boxes[rows, 0], torch.tensor([[0.0, 0.0, 127.0, 127.0]] * int(rows.sum())))


def test_raw_image_mode_on_a_store_without_images_says_so(tmp_path):
    from vlengine.data.loading import make_pretrain_loader
    from vlengine.data.images import ImageTransform
    from vlengine.data.store.writer import StoreWriter

    writer = StoreWriter(str(tmp_path / "s"), feature_dim=4)
    writer.add_image("a", np.array([[0, 0, 9, 9]], np.float32), (10, 10), features=np.zeros((1, 4), np.float32),
                     labels=np.zeros(1, np.int64))
    writer.add_caption(0, "a b", np.array([101, 5, 102]), np.array([-1, 0, -1]))
    writer.close()
    with pytest.raises(ValueError, match="holds no images"):
        make_pretrain_loader(str(tmp_path / "s"), image_transform=ImageTransform(None, None, "torchvision"))


@pytest.mark.parametrize("change, message", [
    ({"data": {"images": False}}, "needs both model.visual"),
    ({"model": {k: v for k, v in TINY_E2E_MODEL.items() if k != "visual"}}, "needs both model.visual"),
    ({"model": {**TINY_E2E_MODEL, "region_feature_size": 32}}, "region_feature_size is 32 but the tiny"),
    ({"model": {**TINY_E2E_MODEL, "visual": {"trunk": "tiny", "mask_mode": "pixel"}}}, "mask_mode"),
    ({"model": {**TINY_E2E_MODEL, "visual": {"trunk": "resnet50", "weights": "corpus"}}}, "pretrains the tiny trunk"),
    ({"model": {**TINY_E2E_MODEL, "visual": {**TINY_E2E_MODEL["visual"], "pretrain_steps": 0}}}, "pretrain_steps"),
    ({"data": {"image_min_size": 64}}, "min_size <= max_size"),
    ({"model": {**TINY_E2E_MODEL, "visual": {**TINY_E2E_MODEL["visual"], "stride": 4}}}, "stride must be one of"),
    ({"model": {**TINY_E2E_MODEL, "visual": {"trunk": "resnet50", "stride": 8}}}, r"stride must be one of \(16,\)"),
    ({"model": {**TINY_E2E_MODEL, "visual": {**TINY_E2E_MODEL["visual"], "feature_mask_margin": -1}}},
     "feature_mask_margin"),
    ({"model": {**{k: v for k, v in TINY_E2E_MODEL.items() if k != "visual"}, "masked_region_embedding": "computed"},
      "data": {"images": False}}, "'computed' keeps .* precomputed features would show"),
])
def test_end_to_end_settings_are_checked_when_read(corpus, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        _config(corpus, tmp_path, **change)


def test_end_to_end_is_vlbert_only(corpus, tmp_path):
    from vlengine.training.config import PretrainConfig
    values = {**_values(corpus, tmp_path), "recipe": "interbert", "objective": {}}
    with pytest.raises(ConfigError, match="built for recipe vlbert"):
        PretrainConfig.from_dict(values)


@pytest.mark.parametrize("mask_mode", ["pixels", "features"])
def test_masked_rois_reach_the_front_end_and_gradients_reach_only_trainable_stages(corpus, tmp_path, mask_mode):
    from vlengine.data import load_tokenizer
    from vlengine.models.visual import FrozenBatchNorm2d
    from vlengine.training.data_setup import make_train_loader, resolve_data
    from vlengine.training.recipes import build_objective
    from vlengine.training.run import model_config

    model = {**TINY_E2E_MODEL, "visual": {**TINY_E2E_MODEL["visual"], "mask_mode": mask_mode}}
    cfg = _config(corpus, tmp_path, model=model)
    paths = resolve_data(cfg.data)
    tokenizer = load_tokenizer(paths.vocab)
    torch.manual_seed(0)
    objective, _ = build_objective(cfg, model_config(cfg, tokenizer, paths.manifest), tokenizer)
    visual = objective.model.visual
    assert visual.mask_mode == {"pixels": "pixels", "features": "feature_map"}[mask_mode]
    norms = [m for m in visual.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)

    seen = {}

    def record_masked(module, args):
        seen["masked"] = args[3]      # forward(images, boxes, valid, masked, image_size)

    visual.register_forward_pre_hook(record_masked)
    batch = next(make_train_loader(cfg.data, paths, 4, seed=0, rank=0, world=1))
    batch = objective.prepare_batch(batch, "pretrain", torch.Generator().manual_seed(0))
    objective(batch, "pretrain").loss.backward()
    assert seen["masked"] is not None and torch.equal(seen["masked"], batch.region_masked)

    trunk = visual.trunk
    for frozen in (trunk.conv1, trunk.layer1):            # stem and res2: Fast R-CNN keeps them fixed
        assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    # res3, res4, the res5-style head (the regions' visual LayerNorm starts on: region_visual_ln_init)
    for trained in (trunk.layer2, trunk.layer3, visual.head):
        grads = [p.grad for p in trained.parameters()]
        assert grads and all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_the_tiny_trunks_detector_stage_is_built_once_beside_the_corpus_and_loaded(corpus, tmp_path):
    """weights: corpus trains the tiny front-end as a region classifier first (VL-BERT's backbone starts
    from a detector), keeps the weights beside the corpus and loads them; a file of other sizes is refused."""
    from safetensors.torch import load_file, safe_open
    from vlengine.models.visual import load_tiny_frontend, tiny_c4_frontend
    from vlengine.training.frontend_pretraining import frontend_cache_path

    visual = {**TINY_E2E_MODEL["visual"], "weights": "corpus", "pretrain_steps": 3}
    cfg = _config(corpus, tmp_path, model={**TINY_E2E_MODEL, "visual": visual})
    lines = []
    frontend = cfg.model.visual.build(corpus, seed=0, log=lines.append)
    path = frontend_cache_path(corpus, 4, 16, 3, 0)
    assert os.path.isfile(path) and any("held-out region accuracy" in line for line in lines)
    with safe_open(path, "pt") as f:
        assert 0.0 <= float(f.metadata()["held_out_region_accuracy"]) <= 1.0
    saved = load_file(path)
    for name, value in frontend.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(value, saved[name]), name
    # stem and res2 stay frozen after loading (the detector stage trained them; VL-BERT keeps them fixed)
    assert not any(p.requires_grad for p in frontend.trunk.layer1.parameters())
    mtime = os.path.getmtime(path)
    lines.clear()
    cfg.model.visual.build(corpus, seed=0, log=lines.append)
    assert os.path.getmtime(path) == mtime and not lines          # built once, then read
    with pytest.raises(ValueError, match="front-end weights: .* has shape .*other sizes"):
        load_tiny_frontend(tiny_c4_frontend(8, 32), path)
    with pytest.raises(ConfigError, match="embedded-layout corpus"):
        cfg.model.visual.build(str(tmp_path), seed=0)
    # the stride-8 trunk has the same tensors: its stage is kept under its own name, and a stage file
    # given by path to a front-end of the other stride is refused (the file records its stride)
    assert frontend_cache_path(corpus, 4, 16, 3, 0, stride=16) == path
    assert "-stride8-" in frontend_cache_path(corpus, 4, 16, 3, 0, stride=8)
    with pytest.raises(ValueError, match="trained at stride 16, this front-end has stride 8"):
        load_tiny_frontend(tiny_c4_frontend(4, 16, stride=8), path)
    load_tiny_frontend(tiny_c4_frontend(4, 16, stride=16), path)


def test_tiny_end_to_end_run_reports_the_masking_leak(corpus, tmp_path):
    from vlengine.training.run import run_pretraining

    result = run_pretraining(_config(corpus, tmp_path), log=lambda *_: None)
    assert result.final_step == 3 and all(math.isfinite(x) for x in result.losses)
    ev = result.eval_metrics
    for key in ("attr_mlm_acc_with_image", "masked_region_acc", "masked_region_acc_vision_only",
                "masked_region_chance", "retrieval_r1"):
        assert 0.0 <= ev[key] <= 1.0, key
    assert ev["masked_region_vision_only_count"] > 0


def _two_rank_zero2(corpus, out, cwd):
    """The shipped tiny end-to-end job, shortened, under ZeRO-2: its `train.processes: 2` starts both
    gloo ranks from the one command (no launcher)."""
    import subprocess
    import sys

    from train_launch import command_env

    sets = [f"data.corpus={corpus}", "deepspeed=" + os.path.join(ROOT, "train", "configs", "deepspeed",
                                                                 "cpu_gloo_zero2.json"),
            "train.total_steps=4", "train.warmup_steps=1", "train.log_every=1", "train.save_every=2",
            f"train.output_dir={out}", "eval.captions=16", "eval.retrieval_images=0",
            "model.num_layers=1", "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
            "model.visual.width=4", "model.visual.out_features=16",
            "model.visual.pretrain_steps=5"]   # the detector stage, short: rank 0 builds it, rank 1 waits
    cmd = [sys.executable, "-m", "vlengine.cli", "pretrain",
           "--config", os.path.join(ROOT, "train", "configs", "main_job_e2e.yaml")]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=cwd, env=command_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 rank(s)" in proc.stdout and "ZeRO stage 2" in proc.stdout
    import json
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f), proc.stdout


def test_two_rank_zero2_end_to_end_resumes_exactly(corpus, tmp_path):
    """The tiny end-to-end job on 2 gloo ranks under ZeRO-2 (frozen stem/res2 outside the optimizer),
    then again from its step-2 checkpoint: the resumed run ends on the same metrics and evaluation."""
    import shutil

    full, _ = _two_rank_zero2(corpus, str(tmp_path / "full"), str(tmp_path))
    resumed_dir = tmp_path / "resumed" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step000000002", resumed_dir / "step000000002")
    (resumed_dir / "latest").write_text("step000000002")
    resumed, output = _two_rank_zero2(corpus, str(tmp_path / "resumed"), str(tmp_path))
    assert "resuming from step 2" in output
    assert resumed["final_step"] == full["final_step"] == 4
    for key in ("loss", "mlm_loss", "mrc_loss"):
        assert resumed["train_metrics"][key] == full["train_metrics"][key], key
    assert resumed["eval"] == full["eval"]
