"""A user's mistakes end in one line on stderr that says what is wrong and what to do: non-zero exit,
no traceback, and well before DeepSpeed would have started (each command runs in a fresh process)."""

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = 5.0  # seconds; importing DeepSpeed alone takes longer than this on the CI machine
GOOD_DEEPSPEED = '{"train_micro_batch_size_per_gpu": 4}'


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "VLENGINE_DEBUG")}
    env.update(PYTHONPATH=ROOT, DS_ACCELERATOR="cpu")
    return env


def vlengine(args: list[str], cwd, prelude: str = "", env: dict | None = None):
    """Run the `vlengine` console command in a fresh interpreter; (exit code, stdout, stderr, seconds)."""
    code = f"import sys; {prelude}\nfrom vlengine.cli import run\nsys.argv = ['vlengine'] + {args!r}\nrun()"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(cwd), env=env or _env(), capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def one_line_error(args, cwd, *expected, prelude: str = "", fast: bool = True) -> str:
    code, _, err, seconds = vlengine(args, cwd, prelude)
    lines = err.strip().splitlines()
    assert code != 0, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]
    if fast:
        assert seconds < FAST, f"took {seconds:.1f}s: {lines[0]}"
    return lines[0]


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture()
def recipe(tmp_path):
    """A valid config file with its DeepSpeed JSON beside it (a tiny VL-BERT on the embedded corpus)."""
    (tmp_path / "ds.json").write_text(GOOD_DEEPSPEED)
    return tmp_path, "recipe: vlbert\nmodel: {preset: tiny, vocab_size: auto}\ndeepspeed: ds.json\n"


def test_misspelt_key_in_yaml_names_file_section_and_the_closest_key(recipe):
    folder, base = recipe
    for section, typo, meant in (("masking", "mlm_prb", "mlm_prob"), ("data", "corpsu", "corpus"),
                                 ("model", "hiden_size", "hidden_size"), ("train", "warmup_step", "warmup_steps"),
                                 ("eval", "caption", "captions"), ("objective", "itm_wieght", "itm_weight")):
        if section == "model":
            text = base.replace("vocab_size: auto", f"vocab_size: auto, {typo}: 64")
        else:
            text = base + f"{section}: {{{typo}: 1}}\n"
        path = _write(folder / f"bad_{section}.yaml", text)
        one_line_error(["pretrain", "--config", path], folder, path, f"unknown {section} setting {typo!r}",
                       f"did you mean {meant!r}?")


def test_misspelt_section_and_key_on_the_command_line(tmp_path):
    one_line_error(["pretrain", "--set", "trian.lr=1e-4"], tmp_path, "unknown section 'trian'", "'train'")
    one_line_error(["pretrain", "--set", "masking.mlm_prb=0.2"], tmp_path, "--set masking.mlm_prb=0.2",
                   "unknown masking setting 'mlm_prb'", "did you mean 'mlm_prob'?")


def test_wrong_value_type(tmp_path):
    one_line_error(["pretrain", "--set", "train.total_steps=abc"], tmp_path, "train.total_steps must be an integer",
                   "'abc'")
    one_line_error(["pretrain", "--set", "masking.region_targets=fuzzy"], tmp_path, "masking.region_targets",
                   "'soft'", "'hard'")


def test_missing_and_broken_config_files(tmp_path):
    one_line_error(["pretrain", "--config", str(tmp_path / "absent.yaml")], tmp_path, "cannot read pretraining config",
                   "absent.yaml")
    broken = _write(tmp_path / "broken.yaml", "train: {lr: [unclosed\n")
    one_line_error(["pretrain", "--config", broken], tmp_path, "broken.yaml is not valid YAML", "line ")


def test_missing_and_broken_deepspeed_json(tmp_path):
    missing = _write(tmp_path / "a.yaml", "deepspeed: nowhere.json\n")
    one_line_error(["pretrain", "--config", missing], tmp_path, "cannot read deepspeed config",
                   os.path.join(str(tmp_path), "nowhere.json"), "relative to the file")
    (tmp_path / "bad.json").write_text('{"train_micro_batch_size_per_gpu": 4,}')
    broken = _write(tmp_path / "b.yaml", "deepspeed: bad.json\n")
    one_line_error(["pretrain", "--config", broken], tmp_path, "bad.json is not valid JSON", "line 1")


def test_corpus_pointing_nowhere_is_relative_to_the_config_file(recipe):
    folder, base = recipe
    path = _write(folder / "c.yaml", base + "data: {corpus: no_such_corpus}\n")
    line = one_line_error(["pretrain", "--config", path], folder.parent, "data.corpus",
                          os.path.join(str(folder), "no_such_corpus"), "is not a folder")
    assert "relative to the file" in line


def test_deepspeed_not_installed(tmp_path):
    one_line_error(["pretrain", "--output-dir", str(tmp_path / "run")], tmp_path,
                   "DeepSpeed is not installed", "install the [train] extra",
                   prelude="sys.modules['deepspeed'] = None  # what a missing package looks like to import")


def test_resuming_into_a_folder_that_holds_a_different_model(tmp_path):
    """The run folder's config.yaml (written when that run started) names another model size."""
    import yaml

    from vlengine.training.config import PretrainConfig, shipped_config
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest").write_text("step000001000")
    saved = PretrainConfig.from_file(shipped_config()).with_overrides(["model.hidden_size=256"]).to_dict()
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    line = one_line_error(["pretrain", "--output-dir", str(out)], tmp_path, "holds a checkpoint of a different model",
                          "model.hidden_size 256 there, 128 now", "--no-resume")
    assert str(out) in line
    saved["model"]["hidden_size"] = 128
    saved["train"]["weight_decay"] = 0.1
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    one_line_error(["pretrain", "--output-dir", str(out)], tmp_path, "cannot resume",
                   "train.weight_decay 0.1 there, 0.01 now", "--no-resume")


def test_export_given_the_run_folder_or_a_missing_tag(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step000000004").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("step000000004")
    one_line_error(["pretrain", "export", str(run), "out.safetensors"], tmp_path, "is a run folder",
                   os.path.join(str(run), "checkpoints"))
    one_line_error(["pretrain", "export", str(run / "checkpoints"), "out.safetensors", "--tag", "step000000005"],
                   tmp_path, "no checkpoint tag 'step000000005'", "did you mean 'step000000004'?")
    one_line_error(["pretrain", "export", str(tmp_path), "out.safetensors"], tmp_path, "holds no checkpoint")


def test_unknown_command_suggests_the_closest(tmp_path):
    line = one_line_error(["pretrian"], tmp_path, "unknown command 'pretrian'", "did you mean 'pretrain'?")
    assert line.startswith("vlengine: ")


def test_unknown_option_is_one_line(tmp_path):
    one_line_error(["pretrain", "--confg", "x.yaml"], tmp_path, "unrecognized arguments", "--help")


def test_data_convert_on_a_folder_without_input_files(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(["data", "convert", "--from", "npz", str(tmp_path / "empty"), "--out", str(tmp_path / "store")],
                   tmp_path, "no input records", "empty", fast=False)
    assert not (tmp_path / "store").exists()


def test_data_convert_given_a_folder_where_it_reads_files(tmp_path):
    (tmp_path / "features").mkdir()
    one_line_error(["data", "convert", "--from", "tsv", str(tmp_path / "features"), "--out", str(tmp_path / "store")],
                   tmp_path, "is a folder; pass .tsv files", fast=False)
    assert not (tmp_path / "store").exists()


def test_debug_shows_the_traceback(tmp_path):
    code, _, err, _ = vlengine(["--debug", "pretrain", "--set", "train.totl_steps=3"], tmp_path)
    assert code != 0 and "Traceback" in err and "did you mean 'total_steps'?" in err
    env = {**_env(), "VLENGINE_DEBUG": "1"}
    code, _, err, _ = vlengine(["pretrain", "--set", "train.totl_steps=3"], tmp_path, env=env)
    assert code != 0 and "Traceback" in err


def test_version_and_help(tmp_path):
    from vlengine import __version__
    code, out, err, _ = vlengine(["--version"], tmp_path)
    assert code == 0 and out.strip() == f"vlengine {__version__}"
    code, out, _, _ = vlengine(["--help"], tmp_path)
    assert code == 0
    for command in ("info", "data corpus", "data convert", "data verify", "data info", "pretrain",
                    "pretrain export"):
        assert f"\n  {command} " in out, command
    assert "vlengine." not in out.replace("vlengine.cli", "")  # no internal module paths


def test_every_option_has_help_text():
    import argparse

    from vlengine.data.cli import _parser as data_parser
    from vlengine.training.cli import _parser as pretrain_parser

    def actions(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            elif not isinstance(action, argparse._HelpAction):
                yield parser.prog, action

    missing = [f"{prog} {action.dest}" for parser in (data_parser(), pretrain_parser())
               for prog, action in actions(parser) if not action.help]
    assert not missing, missing


def test_help_example_with_a_short_schedule_is_accepted(tmp_path):
    """`vlengine pretrain --set train.total_steps=50` (an example of --help) on the main job's 100 warm-up steps."""
    code, out, err, _ = vlengine(["pretrain", "--set", "train.total_steps=50", "--print-config"], tmp_path)
    assert code == 0, err
    assert "total_steps: 50" in out and "warmup_steps: 50" in out
    assert "warm-up shortened to 50 steps" in err


def _checkpoint(folder, state) -> None:
    """A one-rank, non-ZeRO checkpoint as vlengine's save writes it (state file, manifest, `latest`)."""
    import json

    import torch
    tag = folder / "step000000001"
    tag.mkdir(parents=True)
    torch.save(state, tag / "mp_rank_00_model_states.pt")
    sizes = {"mp_rank_00_model_states.pt": (tag / "mp_rank_00_model_states.pt").stat().st_size}
    (tag / "vlengine_manifest.json").write_text(json.dumps({"step": 1, "files": sizes}))
    (folder / "latest").write_text("step000000001")


def test_export_reads_weights_only(tmp_path):
    import datetime

    import torch
    _checkpoint(tmp_path / "plain", {"module": {"w": torch.ones(2, 3)}, "step": 1})
    code, out, err, _ = vlengine(["pretrain", "export", str(tmp_path / "plain"), "w.safetensors"], tmp_path)
    assert code == 0 and "wrote 1 tensors" in out, err
    _checkpoint(tmp_path / "objects", {"module": {"w": torch.ones(2, 3)}, "when": datetime.datetime(2020, 1, 1)})
    one_line_error(["pretrain", "export", str(tmp_path / "objects"), "x.safetensors"], tmp_path,
                   "holds more than tensors", "datetime", "does not unpickle", fast=False)
    assert not (tmp_path / "x.safetensors").exists()
