"""What a run shows while it trains: a tqdm bar, console lines, TensorBoard scalars, and
the metrics log its PNG curves are drawn from (vlengine.training.plots).

Only rank 0 reports (every rank holds the same averaged metrics). Scalars are
grouped as TensorBoard tags: `loss/<name>`, `acc/<name>`, `speed/...`,
`optim/...` so related curves share a panel.
"""

from __future__ import annotations

import math
import os
import sys

from tqdm.auto import tqdm

from vlengine._config import UserError

from .plots import COUNTERS, METRICS_FILE, PLOTS_DIR, SPEED_METRICS, append_metrics, plot_runs


def _tag(name: str) -> str:
    if "/" in name:
        return name
    if name.startswith("loss") or name.endswith("_loss"):
        return f"loss/{name}"
    if name.startswith("acc") or name.endswith("_acc"):
        return f"acc/{name}"
    if name in SPEED_METRICS:
        return f"speed/{name}"
    return f"optim/{name}"


# Values a console line leaves out while they say nothing (TensorBoard and metrics.jsonl keep them):
# no skipped steps, and a loss scale of 1 (BF16/FP32 runs do not scale).
_QUIET_WHEN = {"skipped_steps": 0.0, "loss_scale": 1.0}


def format_metrics(values: dict[str, float]) -> str:
    """A compact console line: 4 significant digits, nothing that only says 'nothing happened'."""
    parts = []
    for name, value in values.items():
        if name in _QUIET_WHEN and value == _QUIET_WHEN[name]:
            continue
        if isinstance(value, float) and (abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3)):
            parts.append(f"{name}={value:.3e}")
        elif isinstance(value, float):
            parts.append(f"{name}={value:.4g}")
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


class Monitor:
    """Progress bar + console + TensorBoard for one run.

    Args:
        total_steps: optimizer steps of the whole run (the bar's length).
        start_step: where a resumed run starts.
        tensorboard_dir: event files go here (None: no TensorBoard).
        enabled: False on ranks other than 0.
        progress: show the tqdm bar (off when stderr is not a terminal and `progress` is "auto").
        run_dir: the run's output folder: every log line goes to its metrics.jsonl, and `close`
            draws the curves under run_dir/plots (None: neither).
    """

    def __init__(self, total_steps: int, start_step: int = 0, tensorboard_dir: str | None = None,
                 enabled: bool = True, progress: bool | str = "auto", run_dir: str | None = None):
        self.enabled = enabled
        self.run_dir = run_dir
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if run_dir and start_step == 0:
            # A run that starts from step 0 (--no-resume into an old folder) owns its metrics log.
            metrics = os.path.join(run_dir, METRICS_FILE)
            if os.path.exists(metrics):
                os.remove(metrics)
        if tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter
            os.makedirs(tensorboard_dir, exist_ok=True)
            self.writer = SummaryWriter(tensorboard_dir)
        show_bar = sys.stderr.isatty() if progress == "auto" else bool(progress)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="pretrain", unit="step",
                        dynamic_ncols=True, disable=not show_bar, mininterval=1.0)

    def step(self, step: int, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None and math.isfinite(loss):
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def log(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """Write one console line and one TensorBoard point per value."""
        if not self.enabled:
            return
        self.print(f"[{prefix}] step {step} {format_metrics(values)}")
        if self.run_dir:
            append_metrics(os.path.join(self.run_dir, METRICS_FILE), prefix, step, values)
        if self.writer is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value) and name not in COUNTERS:
                    self.writer.add_scalar(f"{prefix}/{_tag(name)}", value, step)
            self.writer.flush()

    def print(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.enabled and self.run_dir and os.path.isfile(os.path.join(self.run_dir, METRICS_FILE)):
            out = os.path.join(self.run_dir, PLOTS_DIR)
            try:
                written = plot_runs([self.run_dir], out)
            except UserError as exc:  # no matplotlib: the run's results stand without pictures
                print(f"plots skipped: {exc}", flush=True)
            else:
                print(f"{len(written)} plot(s) of this run in {out} (redraw: vlengine plot {self.run_dir})", flush=True)
