"""The typed config sections and the one `from_mapping` that builds them: typos with the closest key,
types converted or refused by annotation, and a printed config that loads back to the same run."""

import os
import re
from dataclasses import dataclass
from typing import Literal

import pytest

from vlengine._config import ConfigError, UserError, from_mapping
from vlengine.training.config import PretrainConfig, shipped_config, shipped_config_dir


@dataclass
class Example:
    count: int = 1
    rate: float = 0.5
    name: str | None = None
    flag: bool | str = "auto"
    kind: Literal["soft", "hard"] = "soft"
    pair: tuple[float, float] = (0.9, 0.999)


def test_values_are_converted_by_annotation():
    got = from_mapping(Example, {"count": "100", "rate": "1e-4", "name": None, "flag": True, "kind": "hard",
                                 "pair": [1, "2"]}, "f.yaml", "example")
    assert got == Example(count=100, rate=1e-4, name=None, flag=True, kind="hard", pair=(1.0, 2.0))
    assert isinstance(got.rate, float) and isinstance(got.count, int)
    assert from_mapping(Example, {"count": 3.0, "rate": 2}, "f.yaml", "example").rate == 2.0
    assert from_mapping(Example, None, "f.yaml", "example") == Example()


@pytest.mark.parametrize("values,message", [
    ({"cuont": 2}, "f.yaml: unknown example setting 'cuont' (did you mean 'count'?)"),
    ({"zzz": 2}, "f.yaml: unknown example setting 'zzz' (valid: count, flag, kind, name, pair, rate)"),
    ({"count": 2.5}, "f.yaml: example.count must be an integer, got 2.5"),
    ({"count": True}, "f.yaml: example.count must be an integer, got True"),
    ({"rate": "fast"}, "f.yaml: example.rate must be a number, got 'fast'"),
    ({"kind": "fuzzy"}, "f.yaml: example.kind must be one of 'soft', 'hard', got 'fuzzy'"),
    ({"pair": [1]}, "f.yaml: example.pair must be a list of 2 numbers, got [1]"),
    ([1, 2], "f.yaml: expected a mapping of settings at section 'example', got list [1, 2]"),
])
def test_mistakes_name_the_file_section_and_key(values, message):
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, values, "f.yaml", "example")
    assert str(info.value) == message
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("section,values,expected", [
    ("model", {"preset": "tiny", "num_layer": 2}, "unknown model setting 'num_layer' (did you mean 'num_layers'?)"),
    ("model", {"preset": "tiny", "hidden_size": 30, "num_heads": 4}, "divisible"),
    ("model", {"preset": "small"}, "model.preset must be one of base, large, tiny"),
    ("objective", {"mrc_wieght": 1.0}, "unknown objective setting 'mrc_wieght' (did you mean 'mrc_weight'?)"),
    ("masking", {"region_target": "hard"}, "did you mean 'region_targets'?"),
    ("masking", {"preset": "clip"}, "masking.preset must be one of"),
    ("data", {"text_ration": 1.0}, "did you mean 'text_ratio'?"),
    ("data", {"itm_negative_prob": 1.5}, "data.itm_negative_prob must be in [0, 1)"),
    ("train", {"total_steps": "many"}, "train.total_steps must be an integer, got 'many'"),
    ("eval", {"retrieval_image": 4}, "did you mean 'retrieval_images'?"),
    ("deepspeed", {"gradient_clipping": 1.0}, "train_micro_batch_size_per_gpu must be a positive integer"),
])
def test_every_section_is_checked_when_read(section, values, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        PretrainConfig.from_dict({"recipe": "vlbert", section: values}, source="my.yaml")


def test_objective_keys_depend_on_the_recipe():
    PretrainConfig.from_dict({"recipe": "interbert", "objective": {"stage_two_step": 10}})
    with pytest.raises(ConfigError, match="unknown objective setting 'stage_two_step'"):
        PretrainConfig.from_dict({"recipe": "vlbert", "objective": {"stage_two_step": 10}})


FINETUNE_CONFIGS = sorted([n for n in os.listdir(shipped_config_dir()) if n.startswith("finetune_")]
                          + [os.path.join("finetune", n) for n in os.listdir(os.path.join(shipped_config_dir(), "finetune"))])


@pytest.mark.parametrize("name", FINETUNE_CONFIGS)
def test_the_printed_finetune_config_loads_back_to_the_same_run(name):
    from vlengine.training.finetune_config import FinetuneConfig
    cfg = FinetuneConfig.from_file(os.path.join(shipped_config_dir(), name))
    again = FinetuneConfig.from_dict(cfg.to_dict(), source="printed")
    assert again.to_dict() == cfg.to_dict() and again.deepspeed_config == cfg.deepspeed_config


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(shipped_config_dir())
                                        if n.endswith(".yaml") and not n.startswith("finetune_")))
def test_the_printed_config_loads_back_to_the_same_run(name):
    cfg = PretrainConfig.from_file(os.path.join(shipped_config_dir(), name))
    again = PretrainConfig.from_dict(cfg.to_dict(), source="printed")
    assert again.to_dict() == cfg.to_dict()
    assert again.deepspeed_config == cfg.deepspeed_config and again.train == cfg.train


def test_paths_in_a_file_are_relative_to_it_and_on_the_command_line_to_the_working_dir(tmp_path, monkeypatch):
    (tmp_path / "ds.json").write_text('{"train_micro_batch_size_per_gpu": 2}')
    (tmp_path / "c.yaml").write_text("deepspeed: ds.json\ndata: {corpus: corpus}\nmodel: {bert_checkpoint: bert}\n")
    monkeypatch.chdir(tmp_path.parent)
    cfg = PretrainConfig.from_file(os.path.join(tmp_path.name, "c.yaml"))
    assert cfg.deepspeed == str(tmp_path / "ds.json") and cfg.deepspeed_config["train_micro_batch_size_per_gpu"] == 2
    assert cfg.data.corpus == str(tmp_path / "corpus") and cfg.model.bert_checkpoint == str(tmp_path / "bert")
    cfg = cfg.with_overrides(["data.corpus=elsewhere"])
    assert cfg.data.corpus == str(tmp_path.parent / "elsewhere")


def test_main_job_is_a_shipped_file_with_the_main_jobs_settings():
    cfg = PretrainConfig.from_file(shipped_config())
    assert cfg.recipe == "vlbert" and cfg.model.preset == "tiny" and cfg.model.settings["hidden_size"] == 128
    assert cfg.train.total_steps == 4000 and cfg.train.lr == 1e-3 and cfg.train.output_dir == "runs/main-job"
    assert cfg.deepspeed_config["train_micro_batch_size_per_gpu"] == 32
    assert cfg.objective.region_visual_ln_init == 1.0 and cfg.masking.region_targets == "hard"


def test_a_warm_up_longer_than_the_schedule_is_shortened_with_a_note():
    cfg = PretrainConfig.from_file(shipped_config()).with_overrides(["train.total_steps=50"])
    assert cfg.train.warmup_steps == 50 and cfg.train.total_steps == 50
    assert any("warm-up shortened to 50 steps" in note for note in cfg.notes)


def test_section_defaults_are_the_consumers_defaults():
    """The objective sections repeat the task classes' defaults and the masking presets' names (so that a
    config loads without importing torch): they must not drift apart."""
    import dataclasses
    import inspect

    from vlengine.data.masking.presets import PAPERS
    from vlengine.models.cssbert import CSSBert
    from vlengine.tasks.cssbert import CSSBertPretraining
    from vlengine.tasks.interbert import InterBertPretraining
    from vlengine.tasks.semvlp import SemVLPPretraining
    from vlengine.tasks.vlbert import VLBertPretraining
    from vlengine.training.sections import MASKING_PRESETS, OBJECTIVES

    assert set(MASKING_PRESETS) == set(PAPERS)
    tasks = {"vlbert": VLBertPretraining, "interbert": InterBertPretraining, "semvlp": SemVLPPretraining,
             "cssbert": CSSBertPretraining}
    for recipe, task in tasks.items():
        parameters = inspect.signature(task.__init__).parameters
        for f in dataclasses.fields(OBJECTIVES[recipe]):
            if f.name in parameters and f.default is not None:
                assert f.default == parameters[f.name].default, (recipe, f.name)
    contrastive = inspect.signature(CSSBert.__init__).parameters["contrastive_inputs"].default
    assert OBJECTIVES["cssbert"]().contrastive_inputs == contrastive
