"""Everything only a GPU can show, from one command, into one folder: build, info, GPU tests, benchmarks.

    python benchmarks/gpu_suite.py --out benchmarks/results/gpu-h100          # on a GPU machine
    python benchmarks/gpu_suite.py --out /tmp/suite --device cpu --small --no-build   # the CPU smoke (CI)

Parts, in order, each a subprocess stopped at its time budget (the whole suite at ``--budget`` seconds,
540 by default: 9 minutes on an H100):

  build        the extension for the visible GPU's architecture only (VLENGINE_CUDA_ARCH_LIST=<major.minor>
               python setup.py build_ext --inplace); ``--no-build`` uses the build already in the checkout
  info         python -m vlengine.info (which backends load, on which device)
  tests        the CUDA and Triton tests: tests/ops -k "cuda or triton" (deterministic backward included) and
               the FP16 loss-scale test (on the CPU their CUDA selection, which skips: the wiring is checked)
  roi_align, region_masking, contrastive   the op benchmarks at the sizes benchmarks/README.md quotes
               (``--small``: their --smoke sizes), with roofline columns, CSV rows and a PNG each
  model_step   bench_model_step, base and large, BF16 and FP16 (``--small``: the tiny model)
  train        bench_train through DeepSpeed on one GPU, base and large BF16 ("skipped: not installed"
               without DeepSpeed)

Writes ``DIR/report.md`` (device, peaks, command, a status table, each part's output), the CSV rows
(``DIR/*.csv``), the plots (``DIR/*.png``) and each part's full log (``DIR/logs/``). Needs no network.
Exit status 0 when no part failed or timed out.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REPORT_LINES = 120  # output lines of each part quoted in the report (the full log is beside it)


@dataclass
class Part:
    name: str
    command: list[str] | None   # None: skipped, for the reason in ``skip``
    budget_s: float
    skip: str = ""
    env: dict | None = None


@dataclass
class Outcome:
    part: Part
    status: str
    seconds: float
    output: str


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def plan(args, out: str) -> list[Part]:
    """The parts for this device and size, with their budgets (seconds; the GPU figures sum to 540)."""
    import torch

    gpu = args.device == "cuda"
    small = args.small
    bench = lambda script: os.path.join(HERE, script)  # noqa: E731
    common = ["--device", args.device, "--record", out]
    parts = []

    if args.no_build:
        parts.append(Part("build", None, 0, "skipped: --no-build"))
    elif not gpu:
        parts.append(Part("build", None, 0, "skipped: --device cpu (the CPU extension is built with the checkout)"))
    else:
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}.{minor}"
        env = {"VLENGINE_CUDA_ARCH_LIST": arch, "TORCH_CUDA_ARCH_LIST": arch,
               "MAX_JOBS": os.environ.get("MAX_JOBS", str(os.cpu_count() or 4))}
        parts.append(Part("build", python("setup.py", "build_ext", "--inplace"), 120, env=env))

    parts.append(Part("info", python("-m", "vlengine.info"), 20))

    tests = ["tests/ops", "tests/training/test_fp16_loss_scale.py"]
    # the GPU backends' tests only (their CPU-device cases are CI's); on the CPU the same selection skips,
    # without Triton's interpreter: only the wiring is checked there
    selection = ["-k", "cuda or triton or fp16_loss_scale" if gpu else "cuda or fp16_loss_scale"]
    parts.append(Part("tests", python("-m", "pytest", *tests, *selection, "-q", "-p", "no:cacheprovider", "-rfE"),
                      100 if gpu else 90))

    op_budget = 40 if small else None
    if small:
        sizes = {"roi": ["--smoke"], "region": ["--smoke", "--skip-step"],
                 "contrastive": ["--smoke", "--sizes", "64", "--providers", "materialised", "cuda" if gpu else "cpu"]}
    else:
        sizes = {"roi": ["--sizes", "small,vlbert,large", "--repeats", "10"],
                 "region": ["--sizes", "36,100,300", "--repeats", "20"],
                 "contrastive": ["--sizes", "4096,65536", "--dim", "768", "--repeats", "5"]}
    parts.append(Part("roi_align", python(bench("bench_roi_align_masked.py"), *common, *sizes["roi"],
                                          "--plot", os.path.join(out, "roi_align_masked.png")), op_budget or 60))
    parts.append(Part("region_masking", python(bench("bench_region_masking.py"), *common, *sizes["region"],
                                               "--plot", os.path.join(out, "region_masking.png")), op_budget or 40))
    parts.append(Part("contrastive", python(bench("bench_contrastive.py"), *common, *sizes["contrastive"],
                                            "--timeout", "60", "--plot", os.path.join(out, "contrastive.png")),
                      op_budget or 60))

    if small:
        parts.append(Part("model_step", python(bench("bench_model_step.py"), *common, "--smoke", "--paths", "fused"),
                          90))
    else:
        for precision in ("bf16", "fp16"):
            parts.append(Part(f"model_step_{precision}", python(
                bench("bench_model_step.py"), *common, "--sizes", "base,large", "--precision", precision,
                "--steps", "10", "--warmup", "3"), 45))

    if importlib.util.find_spec("deepspeed") is None:
        parts.append(Part("train", None, 0, "skipped: not installed (DeepSpeed; see benchmarks/README.md)"))
    elif small:
        parts.append(Part("train", python(bench("bench_train.py"), "--smoke", "--record", out), 90,
                          env={"DS_ACCELERATOR": "cpu"} if not gpu else None))
    else:
        parts.append(Part("train", python(bench("bench_train.py"), "--sizes", "base", "large", "--recipes", "vlbert",
                                          "--precision", "bf16", "--micro-batch", "64", "--steps", "10",
                                          "--record", out), 50))
    return parts


def run_part(part: Part, timeout: float, log_dir: str) -> Outcome:
    if part.command is None:
        return Outcome(part, part.skip, 0.0, "")
    if timeout <= 1:
        return Outcome(part, "skipped: the suite's time budget is spent", 0.0, "")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(part.env or {})
    start = time.perf_counter()
    log_path = os.path.join(log_dir, f"{part.name}.log")
    with open(log_path, "w") as log:
        log.write(f"$ {shlex.join(part.command)}\n")
        log.flush()
        # its own session, so a timeout ends the part's children (benchmark workers, DeepSpeed ranks) too
        proc = subprocess.Popen(part.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            status = f"timed out after {timeout:.0f} s"
    with open(log_path) as log:
        output = log.read()
    return Outcome(part, status, time.perf_counter() - start, output)


def device_header(device: str) -> list[str]:
    import torch

    sys.path.insert(0, ROOT)
    from vlengine.hardware import device_peaks

    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name = f"{props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB)"
    else:
        name = f"{platform.machine()} CPU, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    peaks = device_peaks(device)
    tflops = ", ".join(f"{k} {v:.3g}" for k, v in peaks.tflops.items())
    return [f"- device: {name}",
            f"- peaks: {tflops} TFLOP/s; {peaks.bandwidth_gbs:.4g} GB/s ({peaks.source})",
            f"- torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}"]


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_report(path: str, argv: list[str], header: list[str], outcomes: list[Outcome], total: float) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = ["# vlengine GPU suite report", "",
             f"- command: `python benchmarks/gpu_suite.py {shlex.join(argv)}`",
             f"- date: {stamp}; git {git_revision()}", *header, f"- total: {total:.0f} s", "",
             "| part | status | seconds | budget s |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        lines.append(f"| {o.part.name} | {o.status} | {o.seconds:.0f} | {o.part.budget_s:.0f} |")
    for o in outcomes:
        if not o.output:
            continue
        tail = o.output.rstrip().splitlines()[-REPORT_LINES:]
        lines += ["", f"## {o.part.name}: {o.status}", "", "```", *tail, "```"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for report.md, the CSV rows, the plots and the logs")
    p.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: cuda when visible")
    p.add_argument("--small", action="store_true", help="smoke sizes everywhere (the CPU check in CI)")
    p.add_argument("--no-build", action="store_true", help="use the extension already built in the checkout")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole suite (default 540)")
    p.add_argument("--parts", default=None, help="comma-separated subset of the parts to run (default: all)")
    args = p.parse_args(argv)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible (use --device cpu --small for the CPU check)")
    out = os.path.abspath(args.out)
    log_dir = os.path.join(out, "logs")
    os.makedirs(log_dir, exist_ok=True)
    parts = plan(args, out)
    if args.parts:
        wanted = set(args.parts.split(","))
        unknown = wanted - {q.name for q in parts}
        if unknown:
            p.error(f"--parts: unknown part {sorted(unknown)[0]!r}; parts: {', '.join(q.name for q in parts)}")
        parts = [q for q in parts if q.name in wanted]

    start = time.perf_counter()
    outcomes = []
    for part in parts:
        remaining = args.budget - (time.perf_counter() - start)
        print(f"[suite] {part.name} ...", flush=True)
        outcome = run_part(part, min(part.budget_s, remaining), log_dir)
        outcomes.append(outcome)
        print(f"[suite] {part.name}: {outcome.status} ({outcome.seconds:.0f} s)", flush=True)
        if part.name == "build" and outcome.status.startswith(("failed", "timed out")):
            print("[suite] the build failed: the parts after it use whatever build the checkout had", flush=True)
    total = time.perf_counter() - start
    report = os.path.join(out, "report.md")
    write_report(report, argv, device_header(args.device), outcomes, total)
    print(f"[suite] report: {report} ({total:.0f} s)")
    return 1 if any(o.status.startswith(("failed", "timed out")) for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
