"""Every paper's recipe builds from a config and trains through DeepSpeed on a tiny model, and the
main job's CLI runs end to end (training, checkpoint, export, held-out evaluation) on a small corpus."""

import json
import math
import os
import subprocess
import sys

import pytest

from train_launch import free_port

os.environ.setdefault("DS_ACCELERATOR", "cpu")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MODEL = {"preset": "tiny", "vocab_size": "auto", "num_region_classes": "auto", "region_feature_size": 2048,
              "hidden_size": 32, "num_heads": 2, "intermediate_size": 64, "num_layers": 2,
              "num_independence_layers": 1, "cross_attention_start": 1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=3, num_train=48,
                                 num_heldout=24, num_text_documents=4)


def _env_without_rank_variables() -> dict:
    # The in-process tests in this module make this process a one-rank group (RANK, MASTER_PORT, ... in
    # os.environ): a child must start its own group, not join that one.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(DS_ACCELERATOR="cpu", PYTHONPATH=ROOT)
    return env


def _config(corpus, recipe, objective, masking, data, tmp_path, fidelity="released"):
    from vlengine.training.config import PretrainConfig
    return PretrainConfig.from_dict({
        "recipe": recipe, "fidelity": fidelity, "model": TINY_MODEL, "objective": objective, "masking": masking,
        "data": {"corpus": corpus, **data},
        "deepspeed": {"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0, "zero_optimization": {"stage": 1}},
        "train": {"total_steps": 4, "warmup_steps": 1, "lr": 1e-3, "log_every": 2, "output_dir": str(tmp_path),
                  "export_safetensors": False},
        "eval": {"captions": 16, "retrieval_images": 4},
    })


RECIPES = {
    "vlbert": ({"itm_weight": 1.0}, {"region_targets": "hard"}, {"text_ratio": 1.0, "text_batch_size": 2,
                                                                 "itm_negative_prob": 0.5}),
    "interbert": ({"stage_two_step": 2}, {"region_targets": "hard"}, {"text_ratio": 0.0, "itm_negative_prob": 0.5}),
    "semvlp": ({}, {}, {"text_ratio": 0.0, "itm_negative_prob": 0.5}),
    "cssbert": ({"contrastive_inputs": "separate"}, {}, {"text_ratio": 0.0, "itm_negative_prob": 0.5}),
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_through_deepspeed(corpus, recipe, tmp_path):
    from vlengine.training.run import run_pretraining
    cfg = _config(corpus, recipe, *RECIPES[recipe], tmp_path)
    result = run_pretraining(cfg, log=lambda *_: None)
    assert result.final_step == 4 and len(result.losses) == 4
    assert all(math.isfinite(x) for x in result.losses)
    if recipe == "interbert":
        assert result.tasks == ["mlm_mom", "mlm_mom", "msm_mrm_itm", "msm_mrm_itm"]
    if recipe == "semvlp":
        assert set(result.tasks) <= {"single", "two"}
    names = set(result.last_metrics)
    expected = {"vlbert": {"mlm_loss", "mrc_loss", "itm_loss"}, "interbert": {"msm_loss", "mrm_loss", "itm_loss"},
                "semvlp": {"mlm_loss", "mop_reg_loss", "mop_label_loss", "itm_loss"},
                "cssbert": {"mlm_loss", "nsp_loss", "pwcl_loss"}}[recipe]
    assert expected <= names, names
    assert {"samples_per_s", "tokens_per_s", "mfu", "loss_scale", "skipped_steps", "lr"} <= names
    if recipe == "vlbert":
        ev = result.eval_metrics
        # the leak in precomputed mode too: region 0 was computed from the unmasked image
        for key in ("attr_mlm_acc_with_image", "attr_mlm_acc_without_image", "masked_region_acc", "retrieval_r1",
                    "masked_region_acc_vision_only", "masked_region_chance"):
            assert 0.0 <= ev[key] <= 1.0
        assert os.listdir(os.path.join(str(tmp_path), "tensorboard"))


@pytest.mark.parametrize("recipe", ["vlbert", "interbert", "cssbert"])
def test_paper_form_trains_through_deepspeed(corpus, recipe, tmp_path):
    """`fidelity: paper` (train/README.md, "Paper and released code"): VL-BERT's corner geometry and
    whole-embedding RoI mask, InterBERT's one-modality masking and [IMG] ITM, CSS-BERT's in-batch NSP
    negatives (the loader then gives matched pairs only)."""
    from vlengine.training.run import run_pretraining
    objective, masking, data = RECIPES[recipe]
    if recipe == "cssbert":
        data = {k: v for k, v in data.items() if k != "itm_negative_prob"}
    cfg = _config(corpus, recipe, objective, masking, data, tmp_path, fidelity="paper")
    result = run_pretraining(cfg, log=lambda *_: None)
    assert result.final_step == 4 and all(math.isfinite(x) for x in result.losses)
    expected = {"vlbert": {"mlm_loss", "mrc_loss", "itm_loss"}, "interbert": {"itm_loss"},
                "cssbert": {"mlm_loss", "nsp_loss", "pwcl_loss"}}[recipe]
    assert expected <= set(result.last_metrics)


def test_main_job_cli_end_to_end(corpus, tmp_path):
    out = str(tmp_path / "run")
    env = _env_without_rank_variables()
    cmd = [sys.executable, "-m", "vlengine.cli", "pretrain", "--output-dir", out, "--set", f"data.corpus={corpus}",
           "--set", "train.total_steps=3", "--set", "train.warmup_steps=1", "--set", "train.log_every=1",
           "--set", "eval.captions=16", "--set", "eval.retrieval_images=4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "MLM accuracy on attribute words, with the image" in proc.stdout
    assert "zero-shot retrieval R@1" in proc.stdout and "masked region accuracy from vision alone" in proc.stdout
    with open(os.path.join(out, "eval.json")) as f:
        result = json.load(f)
    assert result["final_step"] == 3 and "visual_clue_gain_points" in result["eval"]
    from safetensors.torch import load_file
    weights = load_file(os.path.join(out, "model_fp32.safetensors"))
    assert any(name.startswith("model.") for name in weights)
    assert all(t.dtype.is_floating_point is False or str(t.dtype) == "torch.float32" for t in weights.values())


def test_driver_script_under_deepspeeds_launcher_with_two_ranks(corpus, tmp_path):
    """What the recipes' comments tell users to run: DeepSpeed's launcher (it adds --local_rank) over
    train/pretrain.py, here 2 gloo ranks with the CPU smoke config (ZeRO-2)."""
    out = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
           str(free_port()), os.path.join(ROOT, "train", "pretrain.py"),
           "--config", os.path.join(ROOT, "train", "configs", "cpu_gloo_smoke.yaml"), "--output-dir", out,
           "--set", f"data.corpus={corpus}", "--set", "train.total_steps=4", "--set", "train.save_every=2",
           "--set", "eval.captions=16", "--set", "eval.retrieval_images=4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env_without_rank_variables(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 rank(s)" in proc.stdout + proc.stderr
    with open(os.path.join(out, "eval.json")) as f:
        assert json.load(f)["final_step"] == 4
    with open(os.path.join(out, "checkpoints", "latest")) as f:
        assert f.read().strip() == "step000000004"


def test_module_form_accepts_the_launchers_local_rank_before_the_subcommand(capsys):
    from vlengine.cli import main
    assert main(["--local_rank=1", "pretrain", "--print-config"]) == 0
    assert "recipe: vlbert" in capsys.readouterr().out


def test_cli_reports_config_errors(tmp_path):
    from vlengine.training.cli import main
    assert main(["--set", "train.total_steps=abc"]) == 2
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
