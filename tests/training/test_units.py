"""Unit tests of the training pieces that need no DeepSpeed engine."""

import json
import os
import random

import numpy as np
import pytest
import torch

from vlengine.atomic import write_text
from vlengine.data.loading import BatchPlan, ResumableStream
from vlengine.training.checkpoint import MANIFEST, resolve_tag, verify_checkpoint
from vlengine.training.config import PretrainConfig
from vlengine.training.rng import capture_rng_state, restore_rng_state
from vlengine.training.schedule import warmup_linear_decay
from vlengine.training.settings import TrainSettings
from vlengine.training.task_mixing import StagedTaskMixer, TaskMixer


def test_warmup_then_linear_decay():
    values = [warmup_linear_decay(s, 4, 12) for s in range(13)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0 and values[8] == 0.5 and values[12] == 0.0
    assert all(a >= b for a, b in zip(values[3:], values[4:]))
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_linear_decay(0, 20, 10)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_linear_decay(0, 0, 0)


def test_task_mixer_is_a_function_of_seed_and_step_and_follows_weights():
    a, b = TaskMixer({"x": 3.0, "y": 1.0}, seed=5), TaskMixer({"x": 3.0, "y": 1.0}, seed=5)
    draws = [a.task_for_step(s) for s in range(4000)]
    assert draws == [b.task_for_step(s) for s in range(4000)]        # two "ranks" agree
    assert [a.task_for_step(s) for s in (3999, 10, 0)] == [draws[3999], draws[10], draws[0]]  # any order
    share = draws.count("x") / len(draws)
    assert abs(share - 0.75) < 3 * (0.75 * 0.25 / 4000) ** 0.5
    assert draws != [TaskMixer({"x": 3.0, "y": 1.0}, seed=6).task_for_step(s) for s in range(4000)]


def test_task_mixer_bad_weights_and_resume_mismatch():
    for weights in ({}, {"x": -1.0}, {"x": 0.0}, {"x": float("nan")}):
        with pytest.raises(ValueError, match="weight"):
            TaskMixer(weights)
    with pytest.raises(ValueError, match="mixture"):
        TaskMixer({"x": 1.0, "y": 1.0}).check_state(TaskMixer({"x": 1.0, "y": 2.0}).state_dict())


def test_staged_mixer_switches_at_the_stage_boundary():
    mixer = StagedTaskMixer([(0, {"mlm_mom": 1.0}), (10, {"msm_mrm_itm": 1.0})])
    assert {mixer.task_for_step(s) for s in range(10)} == {"mlm_mom"}
    assert {mixer.task_for_step(s) for s in range(10, 30)} == {"msm_mrm_itm"}
    with pytest.raises(ValueError, match="step 0"):
        StagedTaskMixer([(5, {"a": 1.0})])


def _ids(batch):
    return batch.tolist()


def _stream(data, batch_size, seed=1, rank=0, world_size=1, workers=0):
    """What the training driver builds: equal per-rank shards of full batches (drop_last)."""
    plan = BatchPlan(len(data), batch_size=batch_size, rank=rank, world_size=world_size, seed=seed, drop_last=True)
    return ResumableStream(data, plan, torch.tensor, num_workers=workers)


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_shards_are_disjoint_and_resume_mid_epoch_exactly(workers):
    data = list(range(50))
    ranks = [_stream(data, 4, rank=r, world_size=2, workers=workers) for r in range(2)]
    assert [len(s) for s in ranks] == [6, 6]                         # 25 per rank -> 6 full batches each
    epoch = [[x for _ in range(6) for x in _ids(next(ranks[r]))] for r in range(2)]
    assert not set(epoch[0]) & set(epoch[1])
    assert len(set(epoch[0]) | set(epoch[1])) == 2 * 6 * 4
    for rank in range(2):
        full = _stream(data, 4, rank=rank, world_size=2, workers=workers)
        expected = [_ids(next(full)) for _ in range(15)]             # crosses two epoch boundaries
        assert expected[:6] != expected[6:12]                        # each epoch has its own order
        for stop in (5, 6, 7):                                       # just before, at and after a boundary
            first = _stream(data, 4, rank=rank, world_size=2, workers=workers)
            got = [_ids(next(first)) for _ in range(stop)]
            resumed = _stream(data, 4, rank=rank, world_size=2, workers=workers)
            resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
            got += [_ids(next(resumed)) for _ in range(15 - stop)]
            assert got == expected, (rank, stop)


def test_stream_leaves_the_global_rng_alone():
    # A DataLoader started without its own generator draws from the global torch RNG; a resumed run
    # starts one mid-epoch, which would shift every later dropout mask.
    stream = _stream(list(range(20)), 4, workers=0)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for _ in range(7):                                               # starts two DataLoader iterators
        next(stream)
    assert torch.equal(torch.rand(3), expected)


def test_stream_rejects_bad_setup_and_foreign_state():
    with pytest.raises(ValueError, match="batch_size"):
        _stream(list(range(10)), 0)
    with pytest.raises(ValueError, match="rank"):
        _stream(list(range(10)), 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="cannot fill"):
        _stream(list(range(3)), 4)
    with pytest.raises(ValueError, match="plan is for"):
        ResumableStream(list(range(9)), BatchPlan(10, batch_size=2), torch.tensor)
    stream = _stream(list(range(10)), 2, seed=1)
    with pytest.raises(ValueError, match="seed"):
        stream.load_state_dict({**stream.state_dict(), "seed": 2})
    with pytest.raises(ValueError, match="world_size"):
        stream.load_state_dict(_stream(list(range(10)), 2, seed=1, world_size=2).state_dict())
    with pytest.raises(ValueError, match="outside the plan"):
        stream.load_state_dict({**stream.state_dict(), "offset": 6})


def test_rng_state_round_trip_covers_torch_numpy_python():
    state = capture_rng_state()
    before = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    with pytest.raises(ValueError, match="malformed"):
        restore_rng_state({"torch": state["torch"]})


def test_settings_and_config_reject_typos_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="unknown train setting 'totl_steps' \\(did you mean 'total_steps'"):
        TrainSettings.from_dict({"totl_steps": 3})
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainSettings.from_dict({"total_steps": 3, "warmup_steps": 5})
    with pytest.raises(ValueError, match="max_steps"):
        TrainSettings.from_dict({"total_steps": 3, "warmup_steps": 1, "max_steps": 4})
    with pytest.raises(ValueError, match="unknown section"):
        PretrainConfig.from_dict({"trian": {}})
    with pytest.raises(ValueError, match="recipe"):
        PretrainConfig.from_dict({"recipe": "clip"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ValueError, match="bad.yaml"):
        PretrainConfig.from_file(str(bad))
    cfg = PretrainConfig.from_dict({"train": {"total_steps": 10, "warmup_steps": 1}})
    cfg = cfg.with_overrides(["train.lr=3e-4", "data.text_ratio=0.5"])
    assert cfg.train.lr == 3e-4 and cfg.data.text_ratio == 0.5
    with pytest.raises(ValueError, match="section.key=value"):
        cfg.with_overrides(["train.lr"])


def test_every_shipped_recipe_config_parses():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "train", "configs")
    names = sorted(n for n in os.listdir(root) if n.endswith(".yaml") and not n.startswith("finetune_"))
    assert len(names) >= 10
    recipes = set()
    for name in names:
        cfg = PretrainConfig.from_file(os.path.join(root, name))
        if isinstance(cfg.deepspeed, str):   # a JSON file beside the recipe (the main job's is inline)
            assert os.path.isfile(cfg.deepspeed), f"{name}: {cfg.deepspeed} missing"
            with open(cfg.deepspeed) as f:
                assert json.load(f) == cfg.deepspeed_config
        ds = cfg.deepspeed_config
        assert ds["train_micro_batch_size_per_gpu"] > 0
        if "v100" in name:
            assert ds["fp16"]["enabled"] and ds["fp16"]["loss_scale"] == 0   # dynamic loss scaling
            assert ds["zero_optimization"]["stage"] == 2
        if "bf16" in name:
            assert ds["bf16"]["enabled"] and "fp16" not in ds
        recipes.add(cfg.recipe)
    assert recipes == {"vlbert", "interbert", "semvlp", "cssbert"}


def _fake_checkpoint(root, tag, files):
    folder = os.path.join(root, tag)
    os.makedirs(folder)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    write_text(os.path.join(folder, MANIFEST), json.dumps({"step": 1, "files": {n: len(d) for n, d in files.items()}}))
    write_text(os.path.join(root, "latest"), tag)


def test_checkpoint_verification_names_the_broken_file(tmp_path):
    root = str(tmp_path)
    assert resolve_tag(root) is None                                 # nothing saved yet: fresh start
    _fake_checkpoint(root, "step000000001", {"model.pt": b"x" * 100})
    assert resolve_tag(root) == "step000000001"
    with open(os.path.join(root, "step000000001", "model.pt"), "wb") as f:
        f.write(b"x" * 40)                                           # truncated after the save
    with pytest.raises(RuntimeError, match="model.pt has 40 bytes"):
        verify_checkpoint(root, "step000000001")
    os.remove(os.path.join(root, "step000000001", MANIFEST))
    with pytest.raises(RuntimeError, match="incomplete"):
        resolve_tag(root)
    os.makedirs(os.path.join(root, "step000000002"))
    with open(os.path.join(root, "step000000002", MANIFEST), "w") as f:
        f.write("{not json")
    with pytest.raises(RuntimeError, match="corrupt"):
        verify_checkpoint(root, "step000000002")


def test_metric_averager_sums_on_the_device_and_skips_missing_values():
    from vlengine.training.loop import _MetricAverager
    averager = _MetricAverager()
    values = [{"acc": torch.tensor(0.25), "loss": torch.tensor(1.5)},
              {"acc": torch.tensor(float("nan")), "loss": 2.0},             # acc missing from this batch
              {"acc": torch.tensor(0.5, dtype=torch.bfloat16), "loss": torch.tensor(0.1)}]
    for v in values:
        averager.add(v)
    means = averager.pop()
    assert list(means) == ["acc", "loss"]
    assert means["acc"] == (0.25 + 0.5) / 2                                  # the NaN is not counted
    assert means["loss"] == (1.5 + 2.0 + float(torch.tensor(0.1))) / 3      # as Python float sums would give
    averager.add({"acc": torch.tensor(float("nan"))})
    assert np.isnan(averager.pop()["acc"]) and averager.pop() == {}


def test_lr_mult_groups_scale_the_named_parameters_and_the_schedule_keeps_the_ratio():
    """train.lr_mult (VL-BERT's TRAIN.LR_MULT): the front-end's parameters at lr x 0.1, through the
    warm-up / decay schedule; decay and no-decay kept apart; a key naming nothing is refused."""
    from vlengine._config import ConfigError
    from vlengine.training.engine import param_groups
    from vlengine.training.schedule import build_lr_scheduler

    model = torch.nn.ModuleDict({"visual": torch.nn.Linear(3, 4), "encoder": torch.nn.Linear(4, 2)})
    model["visual"].bias.requires_grad_(False)
    groups = param_groups(model, 0.01, lr=1e-3, lr_mult={"visual.": 0.1})
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(model["visual"].weight)]["lr"] == pytest.approx(1e-4)
    assert by_param[id(model["visual"].weight)]["weight_decay"] == 0.01
    assert by_param[id(model["encoder"].weight)]["lr"] == pytest.approx(1e-3)
    assert by_param[id(model["encoder"].bias)]["weight_decay"] == 0.0
    assert id(model["visual"].bias) not in by_param                 # frozen: in no group
    assert groups[0]["lr"] == pytest.approx(1e-3)                   # the logged lr is the base rate's
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    schedule = build_lr_scheduler(optimizer, warmup_steps=2, total_steps=10)
    for _ in range(4):
        optimizer.step()
        schedule.step()
    rates = {g["lr_multiplier"]: g["lr"] for g in optimizer.param_groups}
    assert rates[0.1] == pytest.approx(0.1 * rates[1.0]) and rates[1.0] > 0
    assert len(param_groups(model, 0.01)) == 2 and "lr" not in param_groups(model, 0.01)[0]
    with pytest.raises(ConfigError, match="'visaul.' is part of no trainable"):
        param_groups(model, 0.01, lr=1e-3, lr_mult={"visaul.": 0.1})
    for bad in (0, -1, "x", True):
        with pytest.raises(ValueError, match="lr_mult"):
            TrainSettings(lr_mult={"visual.": bad}).validate()
    with pytest.raises(ValueError, match="processes"):
        TrainSettings(processes=0).validate()
