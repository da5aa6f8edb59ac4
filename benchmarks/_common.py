"""Shared benchmark plumbing: the common flags, timing with spread, peak memory, roofline columns,
a busy machine, a table on stdout, CSV rows and plots.

Every benchmark script times providers (the peer a user would write today, the
reference, and each vlengine backend) and prints a table: per row the median time
with its spread, peak memory, the bytes and FLOPs the op must do (``_roofline``),
the achieved GB/s and TFLOP/s and their fraction of the device's peak
(``vlengine.hardware``). Nothing is written unless asked: ``--record [DIR]`` appends
one CSV row per measurement (default DIR benchmarks/results/) with the git revision,
the device and the thread count, so numbers are never separated from where they
came from; ``--plot FILE`` writes a PNG of speed-up and memory against size;
``--busy`` measures everything twice, quietly and beside a competing 2-thread
PyTorch process (what a second rank or a loader does on the same machine).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the scripts run from a checkout: import its vlengine
    sys.path.insert(0, ROOT)

from vlengine.hardware import DevicePeaks, device_peaks  # noqa: E402


def add_common_args(parser: argparse.ArgumentParser, *, sizes: str, smoke_sizes: str, repeats: int = 10,
                    sizes_help: str = "comma-separated sizes") -> argparse.ArgumentParser:
    """The flags every op benchmark shares (one place, so the scripts and the GPU suite agree)."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default=sizes, help=f"{sizes_help} (default {sizes})")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--busy", action="store_true",
                        help="measure twice: quiet, then beside a competing 2-thread PyTorch matmul process")
    parser.add_argument("--record", nargs="?", const=RESULTS_DIR, default=None, metavar="DIR",
                        help=f"append the rows as CSV under DIR (default {os.path.relpath(RESULTS_DIR, ROOT)}/); "
                             "without it nothing is written")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="write a PNG of speed-up and peak memory against size per provider (needs matplotlib)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny sizes ({smoke_sizes}; --sizes overrides), 2 repeats: checks the script runs")
    parser.set_defaults(smoke_sizes=smoke_sizes)
    return parser


def apply_threads(args: argparse.Namespace) -> None:
    """--threads, or with --busy on the CPU the engine's thread count for one of two ranks on this
    machine (the competing process plays the other): cores // 2, as vlengine/training/threads.py sets
    it. Beside a busy process, more threads than that oversubscribe the cores, and then every parallel
    region (PyTorch's own included) waits for a descheduled thread: pass --threads to measure that."""
    if not args.threads and getattr(args, "busy", False) and getattr(args, "device", "cpu") == "cpu":
        from vlengine.training.threads import rank_threads
        args.threads = rank_threads(None, {"LOCAL_SIZE": "2"})
    if args.threads:
        torch.set_num_threads(args.threads)


def parse_common(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.smoke:  # tiny sizes unless --sizes was given too
        if args.sizes == parser.get_default("sizes"):
            args.sizes = args.smoke_sizes
        args.repeats, args.warmup = 2, 1
    apply_threads(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    args.size_list = [s for s in args.sizes.split(",") if s]
    return args


BUSY_CODE = """
import sys, torch
torch.set_num_threads(2)
a = torch.randn(1024, 1024)
b = torch.randn(1024, 1024)
print("ready", flush=True)
while True:
    a @ b
"""


@contextlib.contextmanager
def busy_machine(threads: int = 2):
    """A competing PyTorch process doing matmuls on ``threads`` threads while the block runs
    (a second rank on the same machine); yields once it is computing, stopped on exit."""
    code = BUSY_CODE.replace("set_num_threads(2)", f"set_num_threads({threads})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the competing process did not start")
        time.sleep(0.2)  # let it reach its loop
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def quiet_and_busy(run: Callable[[], list], busy: bool) -> list:
    """``run()``'s rows; with ``busy``, run again beside a competing process and put the busy
    median of each row beside its quiet one (``busy_median_ms``)."""
    rows = run()
    if busy:
        with busy_machine():
            busy_rows = run()
        by_key = {(r.benchmark, r.case, r.provider, r.mode): r for r in busy_rows}
        for r in rows:
            other = by_key.get((r.benchmark, r.case, r.provider, r.mode))
            r.busy_median_ms = other.median_ms if other else None
    return rows


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
    bytes: float | None = None          # what the op must move (benchmarks/_roofline.py)
    flops: float | None = None          # what it must compute
    dtype: str = "fp32"                 # which peak FLOP/s it is held to
    busy_median_ms: float | None = None  # the same measurement beside a competing process (--busy)
    size: str = ""                      # the size label the plots use as their x axis


def measure(benchmark: str, case: str, provider: str, mode: str, fn: Callable[[], object], device: str, *,
            repeats: int = 10, warmup: int = 2, note: str = "", memory: bool = True, cost=None,
            dtype: str = "fp32", size: str = "") -> Row:
    """Time ``fn`` (median, p20, p80 of ``repeats``) and its peak memory; ``cost`` (a _roofline.Cost) fills
    the roofline columns."""
    times = time_fn(fn, device, warmup=warmup, repeats=repeats)
    q = statistics.quantiles(times, n=5, method="inclusive") if len(times) >= 2 else [times[0]] * 4
    mem = peak_memory(fn, device) / 2**20 if memory else None
    return Row(benchmark, case, provider, mode, statistics.median(times) * 1e3, q[0] * 1e3, q[3] * 1e3, mem, note,
               bytes=cost.bytes if cost else None, flops=cost.flops if cost else None, dtype=dtype, size=size)


def unavailable(benchmark: str, case: str, provider: str, mode: str, why: str, size: str = "") -> Row:
    return Row(benchmark, case, provider, mode, None, None, None, None, note=why, size=size)


def achieved(row: Row, peaks: DevicePeaks | None) -> dict:
    """GB/s and TFLOP/s the row reached on the op's compulsory work, and their fractions of the peaks."""
    out = {"gbs": None, "tflops": None, "bw_frac": None, "flop_frac": None}
    if not row.median_ms:
        return out
    seconds = row.median_ms / 1e3
    if row.bytes is not None:
        out["gbs"] = row.bytes / seconds / 1e9
        if peaks is not None and peaks.bandwidth_gbs == peaks.bandwidth_gbs:
            out["bw_frac"] = out["gbs"] / peaks.bandwidth_gbs
    if row.flops is not None:
        out["tflops"] = row.flops / seconds / 1e12
        peak = peaks.flops_per_s(row.dtype) / 1e12 if peaks is not None else float("nan")
        if peak == peak and peak > 0:
            out["flop_frac"] = out["tflops"] / peak
    return out


def describe_peaks(peaks: DevicePeaks, dtype: str = "fp32") -> str:
    return (f"peaks: {peaks.flops_per_s(dtype) / 1e12:.3g} TFLOP/s {dtype}, {peaks.bandwidth_gbs:.4g} GB/s "
            f"({peaks.source})")


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def print_table(rows: list[Row], *, baseline: str | None = None, peaks: DevicePeaks | None = None) -> None:
    """Rows grouped by (case, mode); speed-up relative to ``baseline`` when it ran; roofline columns
    (MB moved, GFLOP, achieved GB/s and TFLOP/s, % of peak bandwidth and FLOP/s) where the row has a cost;
    busy median and busy/quiet where --busy measured it."""
    busy = any(r.busy_median_ms is not None for r in rows)
    header = (f"{'case':<26} {'mode':<9} {'provider':<13} {'median ms':>10} {'p20-p80 ms':>17} {'peak MB':>9} "
              f"{'speedup':>8} {'MB moved':>9} {'GFLOP':>8} {'GB/s':>8} {'TFLOP/s':>8} {'%BW':>6} {'%FLOP':>6}")
    if busy:
        header += f" {'busy ms':>10} {'busy/quiet':>10}"
    print(header + "  note")
    print("-" * len(header))
    for (case, mode) in dict.fromkeys((r.case, r.mode) for r in rows):
        group = [r for r in rows if r.case == case and r.mode == mode]
        base = next((r.median_ms for r in group if r.provider == baseline and r.median_ms), None)
        for r in group:
            speed = f"{base / r.median_ms:.2f}x" if base and r.median_ms else "-"
            spread = "-" if r.p20_ms is None else f"{r.p20_ms:.2f}-{r.p80_ms:.2f}"
            a = achieved(r, peaks)
            moved = None if r.bytes is None else r.bytes / 1e6
            gflop = None if r.flops is None else r.flops / 1e9
            line = (f"{case:<26} {mode:<9} {r.provider:<13} {_fmt(r.median_ms, '10.3f'):>10} {spread:>17} "
                    f"{_fmt(r.peak_mem_mb, '9.1f'):>9} {speed:>8} {_fmt(moved, '9.2f'):>9} {_fmt(gflop, '8.3f'):>8} "
                    f"{_fmt(a['gbs'], '8.2f'):>8} {_fmt(a['tflops'], '8.4f'):>8} {_pct(a['bw_frac']):>6} "
                    f"{_pct(a['flop_frac']):>6}")
            if busy:
                ratio = (f"{r.busy_median_ms / r.median_ms:.2f}x" if r.busy_median_ms and r.median_ms else "-")
                line += f" {_fmt(r.busy_median_ms, '10.3f'):>10} {ratio:>10}"
            print(f"{line}  {r.note}")


def append_records(path: str, records: list[dict]) -> str:
    """Append dict rows to a CSV; a file whose header lacks some of the new columns is rewritten with the
    union of both (old rows keep their values, new columns empty for them)."""
    if not records:
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fields = list(dict.fromkeys(k for r in records for k in r))
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            old_fields = list(reader.fieldnames or [])
            if set(fields) <= set(old_fields):
                fields = None
            else:
                old_rows = list(reader)
        if fields is None:  # same columns (or fewer): plain append in the file's order
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=old_fields, extrasaction="ignore").writerows(records)
            return path
        fields = list(dict.fromkeys(old_fields + fields))
        records = old_rows + records
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    return path


def append_csv(name: str, rows: list[Row], device: str, directory: str = RESULTS_DIR,
               peaks: DevicePeaks | None = None) -> str:
    path = os.path.join(directory, f"{name}.csv")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = {"timestamp": stamp, "git": git_revision(), "device": device_name(device),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    if peaks is not None:
        meta.update(peak_gbs=round(peaks.bandwidth_gbs, 3), peak_source=peaks.source)
    records = []
    for r in rows:
        d = asdict(r)
        extra = d.pop("extra")
        d.update({f"x_{k}": v for k, v in extra.items()})
        d.update({k: v for k, v in achieved(r, peaks).items()})
        records.append({**meta, **d})
    return append_records(path, records)


def report(name: str, rows: list[Row], args, *, baseline: str | None, peaks: DevicePeaks | None,
           title: str = "", plot_path: str | None = None) -> None:
    """Print the table; record the CSV rows and write the plot when asked (--record, --plot; a script with
    two tables passes the second one its own ``plot_path``)."""
    print_table(rows, baseline=baseline, peaks=peaks)
    if args.record:
        print(f"\nCSV: {append_csv(name, rows, args.device, args.record, peaks)}")
    if args.plot:
        from _plot import plot_speedup_memory
        path = plot_speedup_memory(rows, plot_path or args.plot, baseline=baseline, title=title or name)
        print(f"plot: {path}")


def sibling_path(path: str, suffix: str) -> str:
    """``dir/name.png`` -> ``dir/name-suffix.png``: the second plot of a script with two tables."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-{suffix}{ext or '.png'}"
