"""Pictures of a run: the metrics log (metrics.jsonl) and PNG curves drawn from it.

Every logged line of a run (train and eval) is appended to `RUN_DIR/metrics.jsonl`
as one JSON object; `vlengine plot RUN_DIR [RUN_DIR ...]` (and the end of every run)
draws one panel per metric, several runs side by side. A resumed run logs the steps
after its checkpoint again: the last record of a (split, step) wins, so the curves
show what the finished run did.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict

from vlengine._config import UserError

METRICS_FILE = "metrics.jsonl"
PLOTS_DIR = "plots"
# The kinds of logged values (vlengine.training.monitor tags TensorBoard scalars with them too).
# Counters are totals, not curves (TensorBoard does not get them either).
COUNTERS = ("skipped_steps",)
SPEED_METRICS = ("samples_per_s", "tokens_per_s", "mfu")  # vlengine.training.throughput's report
# Speed and optimizer bookkeeping: what a reader compares between runs is the losses and accuracies.
_SKIPPED = COUNTERS + SPEED_METRICS + ("lr", "loss_scale")


def append_metrics(path: str, split: str, step: int, values: dict) -> None:
    """One JSON line per log line (finite numbers only; NaN is not JSON)."""
    record = {"split": split, "step": int(step)}
    record.update({k: float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)})
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """{"train/loss": [(step, value), ...], "eval/...": ...} of one run, last record per (split, step)."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{run_dir}: no {METRICS_FILE} (is it a run's output folder?)")
    latest: dict[tuple[str, int], dict] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = (str(record.pop("split")), int(record.pop("step")))
            except (ValueError, KeyError, TypeError):
                if line.endswith("\n"):
                    raise UserError(f"{path}:{line_no}: not a metrics record") from None
                continue  # the last line of a killed run may be cut short
            latest[key] = record
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (split, step), record in sorted(latest.items(), key=lambda kv: kv[0][1]):
        for name, value in record.items():
            if name not in _SKIPPED:
                series[f"{split}/{name}"].append((step, float(value)))
    return dict(series)


def plot_runs(run_dirs: list[str], out_dir: str) -> list[str]:
    """One PNG per metric under out_dir, each with a line per run; returns the files written.

    A metric with one point in every run (a run's single final evaluation) is a number, not a
    curve: it stays in metrics.jsonl and eval.json and gets no picture."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display on a training node
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("plots need matplotlib: install the [plot] extra") from None
    runs = {os.path.basename(os.path.normpath(d)) or d: read_metrics(d) for d in run_dirs}
    names = sorted({name for series in runs.values() for name, points in series.items() if len(points) > 1})
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in names:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        for label, series in runs.items():
            points = series.get(name)
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if len(points) < 10 else None, markersize=3, label=label)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, name.replace("/", "_") + ".png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
