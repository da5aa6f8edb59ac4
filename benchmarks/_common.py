"""Shared benchmark plumbing: timing with spread, peak memory, a table on stdout, CSV rows.

Every benchmark script times providers (the peer a user would write today, the
reference, and each vlengine backend), prints a table, and appends one CSV row
per measurement to benchmarks/results/<name>.csv with the git revision, the
device and the thread count, so numbers are never separated from where they
came from.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(RESULTS_DIR), timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=os.path.dirname(RESULTS_DIR), timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} cpu x{os.cpu_count()}"


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _RssSampler:
    """Peak resident-set growth while a function runs, sampled every millisecond (CPU)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


def peak_memory(fn: Callable[[], object], device: str) -> int:
    """Bytes allocated at peak beyond what existed before ``fn`` ran (CUDA: allocator; CPU: sampled RSS)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with _RssSampler() as sampler:
        fn()
    return sampler.growth


def time_fn(fn: Callable[[], object], device: str, *, warmup: int = 2, repeats: int = 10,
            min_seconds: float = 0.0) -> list[float]:
    """Wall times in seconds of ``repeats`` calls after ``warmup`` (CUDA: events)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_seconds:
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


@dataclass
class Row:
    benchmark: str
    case: str
    provider: str
    mode: str
    median_ms: float | None
    p20_ms: float | None
    p80_ms: float | None
    peak_mem_mb: float | None
    note: str = ""
    extra: dict = field(default_factory=dict)


def measure(benchmark: str, case: str, provider: str, mode: str, fn: Callable[[], object], device: str, *,
            repeats: int = 10, warmup: int = 2, note: str = "", memory: bool = True) -> Row:
    times = time_fn(fn, device, warmup=warmup, repeats=repeats)
    q = statistics.quantiles(times, n=5) if len(times) >= 2 else [times[0]] * 4
    mem = peak_memory(fn, device) / 2**20 if memory else None
    return Row(benchmark, case, provider, mode, statistics.median(times) * 1e3, q[0] * 1e3, q[3] * 1e3, mem, note)


def unavailable(benchmark: str, case: str, provider: str, mode: str, why: str) -> Row:
    return Row(benchmark, case, provider, mode, None, None, None, None, note=why)


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(rows: list[Row], *, baseline: str | None = None) -> None:
    """Rows grouped by (case, mode); speed-up relative to ``baseline`` when it ran."""
    header = f"{'case':<22} {'mode':<9} {'provider':<13} {'median ms':>10} {'p20-p80 ms':>17} {'peak MB':>9} {'speedup':>8}  note"
    print(header)
    print("-" * len(header))
    for (case, mode) in dict.fromkeys((r.case, r.mode) for r in rows):
        group = [r for r in rows if r.case == case and r.mode == mode]
        base = next((r.median_ms for r in group if r.provider == baseline and r.median_ms), None)
        for r in group:
            speed = f"{base / r.median_ms:.2f}x" if base and r.median_ms else "-"
            spread = "-" if r.p20_ms is None else f"{r.p20_ms:.2f}-{r.p80_ms:.2f}"
            print(f"{case:<22} {mode:<9} {r.provider:<13} {_fmt(r.median_ms, '10.3f'):>10} {spread:>17} "
                  f"{_fmt(r.peak_mem_mb, '9.1f'):>9} {speed:>8}  {r.note}")


def append_csv(name: str, rows: list[Row], device: str) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.csv")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = {"timestamp": stamp, "git": git_revision(), "device": device_name(device),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    records = []
    for r in rows:
        d = asdict(r)
        extra = d.pop("extra")
        d.update({f"x_{k}": v for k, v in extra.items()})
        records.append({**meta, **d})
    fields = list(records[0].keys()) if records else []
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(records)
    return path
