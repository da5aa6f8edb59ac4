"""Resuming from a checkpoint reproduces the uninterrupted run exactly, and a save killed
halfway (SIGKILL while a checkpoint file is being written) leaves the previous one loadable."""

import os

import pytest

from train_launch import ds_config, run_tiny

# Two tasks (so the task draw matters), dropout (so the torch RNG matters) and
# masking (so the per-micro-step masking generator matters); accumulation 2 so
# the data position is counted in micro-batches.
TASKS = {"cls": 1.0, "mlm": 1.0}
TRAIN = {"total_steps": 12, "warmup_steps": 2, "lr": 0.01, "log_every": 4, "seed": 3}
DS = ds_config(2, 8, accumulation=2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    result, codes, output = run_tiny(tmp, world=1, ds=DS, train=TRAIN, tasks=TASKS, dropout=0.2)
    assert codes == [0], output[-3000:]
    assert len(result["losses"]) == 12
    return result


def test_resume_reproduces_uninterrupted_losses_exactly(tmp_path, uninterrupted):
    out = str(tmp_path / "run")
    first, codes, output = run_tiny(tmp_path, world=1, ds=DS, train={**TRAIN, "max_steps": 5, "output_dir": out},
                                    tasks=TASKS, dropout=0.2, name="first")
    assert codes == [0], output[-3000:]
    second, codes, output = run_tiny(tmp_path, world=1, ds=DS, train={**TRAIN, "output_dir": out},
                                     tasks=TASKS, dropout=0.2, name="second")
    assert codes == [0], output[-3000:]
    assert second["start_step"] == 5
    assert first["losses"] + second["losses"] == uninterrupted["losses"]  # bit-exact, not approximately
    assert os.path.isfile(second["exported"])


def test_save_killed_midway_leaves_previous_checkpoint(tmp_path, uninterrupted):
    out = str(tmp_path / "run")
    train = {**TRAIN, "output_dir": out, "save_every": 4}
    # The second checkpoint (step 8) dies after writing half of its first file.
    _, codes, output = run_tiny(tmp_path, world=1, ds=DS, train=train, tasks=TASKS, dropout=0.2,
                                kill_on_save=2, name="killed")
    assert codes == [-9], output[-3000:]
    ckpt = os.path.join(out, "checkpoints")
    with open(os.path.join(ckpt, "latest")) as f:
        assert f.read() == "step000000004"
    assert any(name.startswith(".partial-") for name in os.listdir(ckpt)), "the kill did not happen mid-save"

    resumed, codes, output = run_tiny(tmp_path, world=1, ds=DS, train=train, tasks=TASKS, dropout=0.2,
                                      name="resumed")
    assert codes == [0], output[-3000:]
    assert resumed["start_step"] == 4
    assert resumed["losses"] == uninterrupted["losses"][4:]
    assert not any(name.startswith(".partial-") for name in os.listdir(ckpt))
