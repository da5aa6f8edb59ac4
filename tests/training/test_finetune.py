"""`vlengine finetune` / `vlengine evaluate` through the real commands, on a 24-image embedded corpus
whose questions are written as VQA v2's official files and converted (vlengine/tasks/downstream/embedded_sets.py).

- 2 ranks (gloo): a run stopped at step 3 (train.max_steps) and continued by the same command without
  it ends with exactly the uninterrupted run's weights and held-out metrics.
- The fine-tuned export carries everything: `vlengine evaluate --checkpoint` alone reproduces the run's
  final metric and writes the official VQA results file.
- A pretraining export starts a fine-tuning run (architecture, vocabulary and MLM transform from the file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from train_launch import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOTAL_STEPS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    return build_embedded_corpus(str(tmp_path_factory.mktemp("corpus") / "c"), seed=5, num_train=24,
                                 num_heldout=12, num_text_documents=2)


@pytest.fixture(scope="module")
def config(corpus, tmp_path_factory) -> str:
    from vlengine.tasks.downstream.embedded_sets import ensure_embedded_vqa
    sets = ensure_embedded_vqa(corpus)
    values = {
        "task": {"name": "vqa", "head": "answer_slot", "loss": "bce", "head_lr_multiplier": 10.0,
                 "min_answer_count": 1},
        "model": {"preset": "tiny", "vocab_size": "auto", "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                  "intermediate_size": 64, "region_feature_size": 2048, "geometry_frequencies": 8,
                  "max_position_embeddings": 64, "hidden_dropout": 0.1},   # dropout: the RNG state must resume too
        "data": {"train": sets["train"], "val": sets["heldout"], "images": os.path.join(corpus, "train"),
                 "val_images": os.path.join(corpus, "heldout"), "vocab": os.path.join(corpus, "vocab.txt"),
                 "max_text_len": 24},
        "deepspeed": {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1,
                      "zero_optimization": {"stage": 1}},
        "train": {"total_steps": TOTAL_STEPS, "warmup_steps": 1, "lr": 1e-3, "log_every": 1, "save_every": 2,
                  "seed": 3, "threads": 1},
        "eval": {"batch_size": 16},
    }
    path = tmp_path_factory.mktemp("config") / "finetune_tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _env(rank: int = 0, world: int = 1, port: str = "") -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    if world > 1:
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port)
    return env


def vlengine(*args: str, world: int = 1, timeout: int = 300) -> tuple[list[int], str]:
    """Run `python -m vlengine.cli ARGS` as `world` ranks; (return codes, rank 0's output)."""
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "vlengine.cli", *args], cwd=ROOT, env=_env(rank, world, port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(world)]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [p.returncode for p in procs], outputs[0]


def _finetune(config: str, out: str, *extra: str, world: int = 2) -> str:
    codes, output = vlengine("finetune", "--config", config, "--output-dir", out, *extra, world=world)
    assert codes == [0] * world and "Traceback" not in output, output[-4000:]
    return output


def _evaluated_again(out: str, data: dict, tmp_path) -> dict:
    """The metrics `vlengine evaluate` gives from the run's export alone on the run's val split."""
    codes, output = vlengine("evaluate", "--checkpoint", os.path.join(out, "model_fp32.safetensors"), "--split",
                             data["val"], "--images", data["val_images"], "--out", str(tmp_path), "--name", "again")
    assert codes == [0], output
    with open(os.path.join(str(tmp_path), "again_metrics.json")) as f:
        return json.load(f)["metrics"]


def _results(out: str) -> dict:
    from safetensors.torch import load_file
    with open(os.path.join(out, "eval.json")) as f:
        summary = json.load(f)
    return {"eval": summary["eval"], "final_step": summary["final_step"],
            "weights": load_file(os.path.join(out, "model_fp32.safetensors"))}


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory) -> tuple[str, dict]:
    out = str(tmp_path_factory.mktemp("uninterrupted") / "run")
    output = _finetune(config, out)
    assert "fine-tuning: " in output and "2 rank(s)" in output
    return out, _results(out)


def test_two_ranks_stopped_and_continued_end_exactly_like_the_uninterrupted_run(config, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    _finetune(config, out, "--set", "train.max_steps=3")
    assert _results(out)["final_step"] == 3
    output = _finetune(config, out)
    assert "resuming from step 3 of 6" in output
    resumed, (_, reference) = _results(out), uninterrupted
    assert resumed["final_step"] == reference["final_step"] == TOTAL_STEPS
    assert resumed["eval"] == reference["eval"] and "vqa_acc" in reference["eval"]
    assert resumed["weights"].keys() == reference["weights"].keys()
    for name, tensor in reference["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name


def test_the_run_writes_the_official_results_file_and_evaluate_reproduces_its_metric(uninterrupted, tmp_path):
    out, reference = uninterrupted
    eval_dir = os.path.join(out, "eval")
    final = f"val_step{TOTAL_STEPS:09d}"
    with open(os.path.join(eval_dir, f"{final}_predictions.json")) as f:
        results = json.load(f)
    assert results and set(results[0]) == {"question_id", "answer"}          # VQA's results format
    codes, output = vlengine("evaluate", "--checkpoint", os.path.join(out, "model_fp32.safetensors"),
                             "--split", _config_value(out, "data", "val"), "--images",
                             _config_value(out, "data", "val_images"), "--out", str(tmp_path), "--name", "again")
    assert codes == [0], output
    with open(tmp_path / "again_metrics.json") as f:
        again = json.load(f)["metrics"]
    assert again["overall"] == reference["eval"]["vqa_acc"]
    with open(tmp_path / "again_predictions.json") as f:
        assert sorted(json.load(f), key=lambda r: r["question_id"]) == sorted(results, key=lambda r: r["question_id"])


def _config_value(out: str, section: str, key: str):
    with open(os.path.join(out, "config.yaml")) as f:
        return yaml.safe_load(f)[section][key]


def test_a_pretraining_export_starts_fine_tuning_with_its_own_config_and_mlm_transform(config, corpus, tmp_path):
    from vlengine.models import VLBert, VLConfig
    from vlengine.models.export import export_info_of, write_export
    from vlengine.models.heads import MaskedLMHead

    with open(os.path.join(corpus, "vocab.txt")) as f:
        vocab = f.read()
    torch.manual_seed(0)
    backbone = VLBert(VLConfig.tiny(vocab_size=len(vocab.split()), hidden_size=32, num_layers=1, num_heads=2,
                                    intermediate_size=64, region_feature_size=2048, geometry_frequencies=8,
                                    max_position_embeddings=64))
    mlm = MaskedLMHead(backbone.config, backbone.embeddings.word_embeddings)
    tensors = {**{f"model.{k}": v for k, v in backbone.state_dict().items()},
               **{f"mlm.{k}": v for k, v in mlm.state_dict().items()}}
    export = str(tmp_path / "pretrained.safetensors")
    write_export(export, tensors, export_info_of(backbone, recipe="vlbert", extra={"vocab": vocab}))
    out = str(tmp_path / "run")
    # the config's model section (2 layers) is for fresh starts: an export fixes its own sizes, so the
    # differing num_layers is refused, and accepted once the section agrees with the export
    codes, output = vlengine("finetune", "--config", config, "--init", export, "--output-dir", out)
    assert codes == [2] and "model.num_layers is 1 there" in output and "Traceback" not in output
    _finetune(config, out, "--init", export, "--set", "model.num_layers=1", "--set", "train.max_steps=1",
              "--set", "data.vocab=null", world=1)
    from safetensors.torch import load_file
    tuned = load_file(os.path.join(out, "checkpoints", "..", "model_fp32.safetensors"))
    assert "backbone.embeddings.word_embeddings.weight" in tuned and "head.classifier.weight" in tuned
    assert os.path.isfile(os.path.join(out, "vocab.txt"))                    # the export's own vocabulary


def test_user_mistakes_are_one_line(config, uninterrupted, tmp_path):
    out, _ = uninterrupted
    cases = [
        (["finetune", "--config", config, "--set", "task.hed=pooled_mlp"], "unknown task setting 'hed'"),
        (["finetune", "--config", config, "--init", str(tmp_path / "missing.safetensors")], "does not exist"),
        (["finetune", "--config", config, "--init", os.path.join(out, "model_fp32.safetensors"),
          "--output-dir", str(tmp_path / "x")], "already fine-tuned for vqa"),
        (["finetune", "--config", config, "--output-dir", out, "--set", "task.head=pooled_mlp"],
         "different model"),
        (["evaluate", "--checkpoint", os.path.join(out, "model_fp32.safetensors"), "--task", "gqa"],
         "fine-tuned for vqa, not gqa"),
        (["evaluate", "--checkpoint", config], "not a readable safetensors file"),
    ]
    for args, message in cases:
        codes, output = vlengine(*args)
        assert codes[0] != 0 and message in output and "Traceback" not in output, (args, output[-2000:])


def test_a_hugging_face_bert_folder_starts_a_text_only_baseline(config, corpus, tmp_path):
    from transformers import BertConfig, BertModel

    with open(os.path.join(corpus, "vocab.txt")) as f:
        vocab_size = len(f.read().split())
    bert = BertModel(BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(tmp_path / "bert")
    output = _finetune(config, str(tmp_path / "run"), "--init", str(tmp_path / "bert"), "--set", "train.max_steps=1",
                       "--set", "task.with_image=false", world=1)
    assert f"init: BERT {tmp_path / 'bert'}: " in output and "images removed (question-only baseline)" in output
    assert "vqa_acc" in _results(str(tmp_path / "run"))["eval"]


def test_retrieval_fine_tunes_and_ranks_full_and_two_stage_and_a_pretraining_itm_head_ranks_zero_shot(
        config, corpus, tmp_path):
    from vlengine.tasks.downstream.embedded_sets import ensure_embedded_retrieval
    from vlengine.models import VLBert, VLConfig
    from vlengine.models.export import export_info_of, write_export
    from vlengine.models.heads import ITMHead

    sets = ensure_embedded_retrieval(corpus)              # Karpathy's JSON of the corpus, converted
    (train, images), (test, test_images) = sets["train"], sets["test"]
    out = str(tmp_path / "run")
    _finetune(config, out, "--task", "retrieval", "--set", f"data.train={train}", "--set", f"data.images={images}",
              "--set", f"data.val={test}", "--set", f"data.val_images={test_images}", "--set", "train.max_steps=2",
              "--set", "eval.retrieval_k=3", world=1)
    with open(os.path.join(out, "eval", "val_step000000002_metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    n_images, n_captions = metrics["images"], metrics["captions"]
    assert (n_images, n_captions) == (12, 60)             # the 12 held-out images, 5 captions each
    assert metrics["full_itm_pairs"] == n_images * n_captions
    assert metrics["two_stage_itm_pairs"] <= (n_images + n_captions) * 3
    for mode in ("full", "two_stage", "dual_encoder"):
        assert 0 <= metrics[mode]["r_mean"] <= 100

    with open(os.path.join(corpus, "vocab.txt")) as f:
        vocab = f.read()
    backbone = VLBert(VLConfig.tiny(vocab_size=len(vocab.split()), hidden_size=32, num_layers=1, num_heads=2,
                                    intermediate_size=64, region_feature_size=2048, geometry_frequencies=8,
                                    max_position_embeddings=64))
    itm = ITMHead(backbone.config)
    export = str(tmp_path / "pretrained.safetensors")
    write_export(export, {**{f"model.{k}": v for k, v in backbone.state_dict().items()},
                          **{f"itm.{k}": v for k, v in itm.state_dict().items()}},
                 export_info_of(backbone, recipe="vlbert", extra={"vocab": vocab}))
    codes, output = vlengine("evaluate", "--task", "retrieval", "--checkpoint", export, "--split", test,
                             "--images", test_images, "--retrieval-mode", "full", "--out", str(tmp_path / "zs"))
    assert codes == [0] and "full_text_to_image_R1" in output and "full_itm_passes" in output, output[-2000:]
