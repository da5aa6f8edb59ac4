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

Per row the roofline columns (``_roofline.contrastive_cost``: inputs read and
gradients written, 6 B^2 d matmul FLOPs for forward + backward) against the
device's peaks.

    python benchmarks/bench_contrastive.py                        # the issue's grid
    python benchmarks/bench_contrastive.py --sizes 4096 --dim 768 --providers materialised cpu
    python benchmarks/bench_contrastive.py --smoke --busy          # tiny, quiet and beside a busy process

``--record [DIR]`` appends the rows to DIR/contrastive.csv (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    device = torch.device("cuda" if args.provider in ("cuda", "triton") or args.device == "cuda" and
                          args.provider != "cpu" else "cpu")
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

def _provider_device(provider: str, device: str) -> str:
    """cuda/triton run on the GPU, cpu on the CPU; the materialised loss and the reference on --device."""
    return "cuda" if provider in ("cuda", "triton") else ("cpu" if provider == "cpu" else device)


def _available(provider: str, device: str = "cpu") -> str | None:
    import torch

    from vlengine.ops import _backend

    device = _provider_device(provider, device)
    if provider == "materialised":
        return "no GPU" if device == "cuda" and not torch.cuda.is_available() else None
    if device == "cuda" and not torch.cuda.is_available():
        return "no GPU"
    return _backend.reason_unavailable(provider, torch.device(device), "contrastive_loss_stats")


def _memory_budget(provider: str, device: str = "cpu") -> int:
    import torch

    if _provider_device(provider, device) == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * GIB


def run_one(provider, batch, dim, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--provider", provider, "--batch", str(batch),
           "--dim", str(dim), "--dtype", args.dtype, "--kind", args.kind, "--repeats", str(args.repeats),
           "--threads", str(args.threads or 0), "--device", args.device]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_grid(args, batches, dims) -> list:
    """One Row per (dim, batch, provider), each measured in its own process."""
    from _common import Row, unavailable
    from _roofline import contrastive_cost

    bytes_per_b2 = {}  # quadratic provider -> measured extra bytes / B^2 at its largest batch
    rows = []
    element = {"float32": 4, "float16": 2, "bfloat16": 2}[args.dtype]
    dtype = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[args.dtype]
    for dim in dims:
        for batch in batches:
            case, size = f"B={batch} d={dim}", f"{batch}x{dim}"
            for provider in args.providers:
                why = _available(provider, args.device)
                if why:
                    rows.append(unavailable("contrastive_loss", case, provider, "both", why, size=size))
                    continue
                note, result = "", None
                if provider in QUADRATIC:
                    per = bytes_per_b2.get((provider, dim), 16.0)
                    need = per * batch * batch
                    if need > 0.5 * _memory_budget(provider, args.device):
                        note = f"not run: would need ~{need / GIB:.1f} GiB ({per:.1f} B per B^2)"
                if not note:
                    try:
                        result = run_one(provider, batch, dim, args)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:
                        note = f"failed: {exc}"
                if not result:
                    rows.append(unavailable("contrastive_loss", case, provider, "both", note, size=size))
                    continue
                times = result["times"][1:] or result["times"]  # the first run also paid for first use
                q = statistics.quantiles(times, n=5, method="inclusive") if len(times) >= 2 else [times[0]] * 4
                extra = result["extra_bytes"]
                if provider in QUADRATIC:
                    bytes_per_b2[(provider, dim)] = max(extra, 0) / batch ** 2
                cost = contrastive_cost(batch, dim, element, "both")
                rows.append(Row("contrastive_loss", case, provider, "both", statistics.median(times) * 1e3,
                                q[0] * 1e3, q[3] * 1e3, extra / 2 ** 20, "peak MB = extra beyond inputs and grads",
                                extra={"kind": args.kind, "batch": batch, "dim": dim}, bytes=cost.bytes,
                                flops=cost.flops, dtype=dtype, size=size))
    return rows


def main(argv=None) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import add_common_args, describe_peaks, device_peaks, parse_common, quiet_and_busy, report

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, sizes="1024,4096,16384,65536", smoke_sizes="64,256", repeats=3, sizes_help="batch sizes B")
    p.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (the same as --sizes)")
    p.add_argument("--dim", type=int, nargs="+", default=[256, 768])
    p.add_argument("--providers", nargs="+", default=None, choices=PROVIDERS,
                   help="default: materialised, reference and the device's backends")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--kind", default="infonce", choices=["infonce", "pwcl"])
    p.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--provider", help=argparse.SUPPRESS)
    if "--child" in (argv if argv is not None else sys.argv[1:]):
        args = p.parse_args(argv)
        args.batch, args.dim = args.batch[0], args.dim[0]
        print(json.dumps(child(args)))
        return
    args = parse_common(p, argv)
    if args.smoke:
        args.dim = [32]
    batches = args.batch or [int(b) for b in args.size_list]
    if args.providers is None:
        args.providers = ["materialised", "reference"] + (["cuda", "triton"] if args.device == "cuda" else ["cpu"])
    peaks = device_peaks(args.device)
    threads = f", {args.threads} CPU thread(s)" if args.threads else ""
    print(f"contrastive_loss ({args.kind}, {args.dtype}), forward + backward on {args.device}{threads}")
    print(describe_peaks(peaks, {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[args.dtype]))
    rows = quiet_and_busy(lambda: run_grid(args, batches, args.dim), args.busy)
    report("contrastive", rows, args, baseline="materialised", peaks=peaks,
           title=f"contrastive_loss {args.kind} forward+backward")


if __name__ == "__main__":
    main()
