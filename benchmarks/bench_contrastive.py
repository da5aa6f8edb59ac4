"""Benchmark of vlengine.ops.contrastive_loss: forward + backward time and peak memory per provider.

Providers:
    materialised  open_clip-style: logits = t @ v.T / tau, then cross-entropy both ways (B x B in memory)
    reference     vlengine's reference backend (materialises its b x B block too)
    cpu, cuda, triton   vlengine's tiled kernels

Each measurement runs in a fresh subprocess, so peak memory is that run's alone:
on the CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs
after the inputs exist), on a GPU torch.cuda.max_memory_allocated. "extra" is
that peak minus the inputs and minus the bytes of their two gradients: the
memory the loss itself needs. Where a quadratic provider would not fit, the
table prints the memory it would need, extrapolated from the bytes per B^2 it
used at the largest batch that ran (or 16 B/B^2, four float32 matrices, when
none did).

    python benchmarks/bench_contrastive.py                        # the issue's grid
    python benchmarks/bench_contrastive.py --batch 4096 --dim 768 --providers materialised cpu

Rows are appended to benchmarks/results/contrastive.csv with the git revision and the device.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "contrastive.csv")
PROVIDERS = ("materialised", "reference", "cpu", "cuda", "triton")
QUADRATIC = ("materialised", "reference")
GIB = 1024 ** 3


# ---- the child: one provider, one size ----

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set (Linux >= 4.0)


def _loss_fn(provider: str, kind: str, temperature: float):
    import torch
    import torch.nn.functional as F

    import vlengine.ops as ops

    if provider == "materialised":
        def materialised(t, v):
            t, v = F.normalize(t, dim=1), F.normalize(v, dim=1)
            logits = t @ v.T / temperature
            if kind == "pwcl":
                eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
                return torch.logsumexp(logits.masked_fill(eye, float("-inf")).flatten(), 0) - \
                    torch.logsumexp(logits.diagonal(), 0)
            labels = torch.arange(logits.shape[0], device=logits.device)
            return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        return materialised
    return lambda t, v: ops.contrastive_loss(t, v, temperature, kind=kind, backend=provider)


def child(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.provider in ("cuda", "triton") else "cpu")
    dtype = getattr(torch, args.dtype)
    fn = _loss_fn(args.provider, args.kind, 0.07)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    warm = [torch.randn(64, args.dim, device=device, dtype=dtype, requires_grad=True) for _ in range(2)]
    fn(*warm).backward()  # libraries, thread pools, kernels compiled: not counted below
    gen = torch.Generator(device=device).manual_seed(0)
    t = torch.randn(args.batch, args.dim, device=device, dtype=dtype, generator=gen)
    v = (0.5 * t + torch.randn(args.batch, args.dim, device=device, dtype=dtype, generator=gen))
    t.requires_grad_()
    v.requires_grad_()
    grad_bytes = 2 * t.numel() * t.element_size()
    sync()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        fn(t, v).backward()
        sync()
        first = time.perf_counter() - t0
        extra = torch.cuda.max_memory_allocated(device) - base - grad_bytes
    else:
        base = _rss_bytes()
        _reset_peak_rss()
        t0 = time.perf_counter()
        fn(t, v).backward()
        first = time.perf_counter() - t0
        extra = _peak_rss_bytes() - base - grad_bytes

    times = [first]
    for _ in range(args.repeats - 1):
        t.grad = v.grad = None
        sync()
        t0 = time.perf_counter()
        fn(t, v).backward()
        sync()
        times.append(time.perf_counter() - t0)
    return {"times": times, "extra_bytes": extra}


# ---- the parent: the grid, the table, the CSV ----

def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or 'CPU'} ({os.cpu_count()} cores)"


def _device_name(provider: str) -> str:
    if provider in ("cuda", "triton"):
        import torch
        return torch.cuda.get_device_name()
    return _cpu_name()


def _available(provider: str) -> str | None:
    import torch

    from vlengine.ops import _backend

    if provider == "materialised":
        return None
    device = "cuda" if provider in ("cuda", "triton") else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        return "no GPU"
    return _backend.reason_unavailable(provider, torch.device(device), "contrastive_loss_stats")


def _memory_budget(provider: str) -> int:
    import torch

    if provider in ("cuda", "triton") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * GIB


def run_one(provider, batch, dim, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--provider", provider, "--batch", str(batch),
           "--dim", str(dim), "--dtype", args.dtype, "--kind", args.kind, "--repeats", str(args.repeats),
           "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    p.add_argument("--dim", type=int, nargs="+", default=[256, 768])
    p.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--kind", default="infonce", choices=["infonce", "pwcl"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads (torch.set_num_threads); 0 keeps torch's default. One thread gives steadier "
                        "numbers on a shared machine, where OpenMP barriers wait for descheduled threads")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    p.add_argument("--csv", default=RESULTS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--provider", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.batch, args.dim = args.batch[0], args.dim[0]
        print(json.dumps(child(args)))
        return

    revision, stamp = _git_revision(), datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    bytes_per_b2 = {}  # quadratic provider -> measured extra bytes / B^2 at its largest batch
    rows = []
    threads = f", {args.threads} CPU thread(s)" if args.threads else ""
    print(f"contrastive_loss ({args.kind}, {args.dtype}), forward + backward{threads}; revision {revision}")
    print(f"{'B':>6} {'d':>4} {'provider':>12} {'median s':>9} {'min-max s':>15} {'extra MiB':>10}  note")
    for dim in args.dim:
        for batch in args.batch:
            for provider in args.providers:
                why = _available(provider)
                if why:
                    continue
                note, result = "", None
                if provider in QUADRATIC:
                    per = bytes_per_b2.get((provider, dim), 16.0)
                    need = per * batch * batch
                    if need > 0.5 * _memory_budget(provider):
                        note = f"not run: would need ~{need / GIB:.1f} GiB ({per:.1f} B per B^2)"
                if not note:
                    try:
                        result = run_one(provider, batch, dim, args)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        note = f"failed: {exc}"
                if result:
                    times = result["times"][1:] or result["times"]  # the first run also paid for first use
                    med, lo, hi = statistics.median(times), min(times), max(times)
                    extra = result["extra_bytes"]
                    if provider in QUADRATIC:
                        bytes_per_b2[(provider, dim)] = max(extra, 0) / batch ** 2
                    print(f"{batch:>6} {dim:>4} {provider:>12} {med:>9.3f} {lo:>7.3f}-{hi:<7.3f} "
                          f"{extra / 2 ** 20:>10.1f}  {note}")
                else:
                    med = lo = hi = extra = None
                    print(f"{batch:>6} {dim:>4} {provider:>12} {'-':>9} {'-':>15} {'-':>10}  {note}")
                device = _device_name(provider)
                if args.threads and provider not in ("cuda", "triton"):
                    device += f", {args.threads} thread(s)"
                rows.append([stamp, revision, device, provider, args.kind, args.dtype, batch, dim,
                             med, lo, hi, extra, note])
    os.makedirs(os.path.dirname(args.csv), exist_ok=True)
    new = not os.path.exists(args.csv)
    with open(args.csv, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["utc", "git_revision", "device", "provider", "kind", "dtype", "batch", "dim",
                             "median_s", "min_s", "max_s", "extra_peak_bytes", "note"])
        writer.writerows(rows)
    print(f"appended {len(rows)} rows to {os.path.relpath(args.csv, ROOT)}")


if __name__ == "__main__":
    main()
