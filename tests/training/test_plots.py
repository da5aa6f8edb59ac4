"""The metrics log of a run and its PNG curves (`vlengine plot`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vlengine._config import UserError
from vlengine.training.monitor import Monitor
from vlengine.training.plots import METRICS_FILE, append_metrics, plot_runs, read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: str) -> None:
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, path
    height, width = matplotlib.image.imread(path).shape[:2]      # decodes: a whole, valid image
    assert height > 100 and width > 100


def test_last_record_of_a_step_wins_and_a_cut_last_line_is_ignored(tmp_path):
    path = str(tmp_path / METRICS_FILE)
    for step in (1, 2, 3):                                       # the run, killed after step 3 ...
        append_metrics(path, "train", step, {"loss": 10.0 - step, "samples_per_s": 5.0, "skipped_steps": 0})
    for step in (3, 4):                                          # ... resumed from its step-2 checkpoint
        append_metrics(path, "train", step, {"loss": 1.0 * step, "lr": 1e-4, "bad": float("nan")})
    append_metrics(path, "eval", 4, {"region_acc": 0.5})
    with open(path, "a") as f:
        f.write('{"split": "train", "st')                        # a kill in the middle of a line
    series = read_metrics(str(tmp_path))
    assert series == {"train/loss": [(1, 9.0), (2, 8.0), (3, 3.0), (4, 4.0)], "eval/region_acc": [(4, 0.5)]}


def test_a_corrupt_line_in_the_middle_names_the_file_and_line(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"split": "train", "step": 1, "loss": 1}\nnot json\n')
    with pytest.raises(UserError, match=rf"{METRICS_FILE}:2: not a metrics record"):
        read_metrics(str(tmp_path))
    with pytest.raises(UserError, match="no metrics.jsonl"):
        read_metrics(str(tmp_path / "elsewhere"))


def test_monitor_logs_every_line_and_draws_the_curves_at_close(tmp_path):
    run = str(tmp_path / "run")
    os.makedirs(run)
    append_metrics(os.path.join(run, METRICS_FILE), "train", 9, {"loss": 1.0})   # an older run's, same folder
    monitor = Monitor(total_steps=4, tensorboard_dir=None, progress=False, run_dir=run)
    for step in range(1, 5):
        monitor.log(step, {"loss": 5.0 / step, "mlm_acc": 0.1 * step})
    monitor.log(2, {"region_acc": 0.4, "final_only": 1.0}, prefix="eval")
    monitor.log(4, {"region_acc": 0.6}, prefix="eval")
    monitor.close()
    with open(os.path.join(run, METRICS_FILE)) as f:
        assert len(f.readlines()) == 6
    plots = sorted(os.listdir(os.path.join(run, "plots")))
    assert plots == ["eval_region_acc.png", "train_loss.png", "train_mlm_acc.png"]
    for name in plots:
        _assert_png(os.path.join(run, "plots", name))


def test_vlengine_plot_draws_several_runs_side_by_side(tmp_path):
    runs = []
    for name, scale in (("base", 1.0), ("large", 0.5)):
        run = tmp_path / name
        run.mkdir()
        for step in range(1, 6):
            append_metrics(str(run / METRICS_FILE), "train", step, {"loss": scale * 4 / step})
        runs.append(str(run))
    out = tmp_path / "compare"
    proc = subprocess.run([sys.executable, "-m", "vlengine.cli", "plot", *runs, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 plot(s)" in proc.stdout
    _assert_png(str(out / "train_loss.png"))
    assert plot_runs(runs, str(tmp_path / "again")) == [str(tmp_path / "again" / "train_loss.png")]


def test_vlengine_plot_on_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vlengine.cli", "plot", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no metrics.jsonl" in proc.stderr
    assert proc.stdout == ""


def test_console_lines_are_compact():
    from vlengine.training.monitor import format_metrics

    line = format_metrics({"loss": 2.345678, "samples_per_s": 1234.5678, "lr": 1e-4, "mfu": 0.0123456,
                           "loss_scale": 1.0, "skipped_steps": 0.0})
    assert line == "loss=2.346 samples_per_s=1235 lr=1.000e-04 mfu=0.01235"
    assert format_metrics({"loss_scale": 65536.0, "skipped_steps": 2.0}) == "loss_scale=6.554e+04 skipped_steps=2"
