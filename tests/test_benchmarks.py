"""The benchmarks keep running: the plumbing (CSV only when asked, plots are PNGs, --busy), the op
benchmarks under pytest-benchmark at tiny sizes, each script's smoke run and the GPU suite end to end
on the CPU (--device cpu --small). The scripts run in subprocesses, as a user runs them."""

import csv
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCHMARKS)

import _common  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, timeout=300, env=None):
    environment = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=environment)


def tracked_results_state():
    """`git status` of benchmarks/ (None outside a git checkout): running a benchmark must not change it."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def rows():
    row = _common.Row
    return [row("op", "tiny case", "peer", "both", 4.0, 3.9, 4.1, 10.0, size="tiny"),
            row("op", "tiny case", "cpu", "both", 1.0, 0.9, 1.1, 2.0, size="tiny", bytes=1e6, flops=1e6),
            row("op", "small case", "peer", "both", 40.0, 39.0, 41.0, 100.0, size="small"),
            row("op", "small case", "cpu", "both", 5.0, 4.9, 5.1, 8.0, size="small"),
            _common.unavailable("op", "small case", "cuda", "both", "no GPU", size="small")]


def test_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    from _plot import plot_speedup_memory

    path = plot_speedup_memory(rows(), str(tmp_path / "sub" / "op.png"), baseline="peer", title="op")
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert os.path.getsize(path) > 5000  # axes, lines and labels were drawn


def test_record_appends_and_widens_the_header(tmp_path):
    first = _common.append_csv("op", rows()[:2], "cpu", str(tmp_path))
    _common.append_records(first, [{"benchmark": "op", "new_column": 7}])
    with open(first, newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == 3 and records[0]["provider"] == "peer" and records[2]["new_column"] == "7"
    assert records[1]["gbs"] and float(records[1]["bytes"]) == 1e6  # the roofline columns are recorded


def test_busy_runs_a_competing_process_and_stops_it():
    calls = []

    def measure_once():
        calls.append(1)
        return [_common.Row("op", "c", "p", "forward", float(len(calls)), None, None, None)]

    with _common.busy_machine() as proc:
        assert proc.poll() is None  # computing beside the block
    assert proc.returncode is not None
    (row,) = _common.quiet_and_busy(measure_once, busy=True)
    assert (row.median_ms, row.busy_median_ms) == (1.0, 2.0)


def test_pytest_benchmark_runs_the_op_benchmarks(tmp_path):
    pytest.importorskip("pytest_benchmark")
    before = tracked_results_state()
    out = run("-m", "pytest", "benchmarks", "--benchmark-only", "--bench-size", "tiny", "--bench-device", "cpu",
              "-q", "-p", "no:cacheprovider", "--benchmark-max-time=0.02", "--benchmark-min-rounds=2",
              "--benchmark-warmup=off", f"--benchmark-json={tmp_path / 'bench.json'}", timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    import json
    report = json.loads((tmp_path / "bench.json").read_text())
    groups = {b["group"].split(" ")[0] for b in report["benchmarks"]}
    assert groups == {"roi_align_masked", "mask_pixels", "iou_neighbourhood_mask", "contrastive_loss"}
    cpu = next(b for b in report["benchmarks"] if b["name"] == "test_contrastive_loss[cpu]")
    assert cpu["extra_info"]["flops"] == 6 * 64 * 64 * 32 and cpu["extra_info"]["tflops"] > 0
    assert tracked_results_state() == before


@pytest.mark.parametrize("script, args", [
    ("bench_roi_align_masked.py", ["--busy"]),
    ("bench_region_masking.py", []),
])
def test_op_script_smoke_records_only_when_asked(tmp_path, script, args):
    before = tracked_results_state()
    plot = tmp_path / "plot.png"
    out = run(os.path.join(BENCHMARKS, script), "--smoke", "--device", "cpu", "--plot", str(plot), *args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "GB/s" in out.stdout and "%BW" in out.stdout  # the roofline columns
    if "--busy" in args:
        assert "busy/quiet" in out.stdout
    with open(plot, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert not any(p.suffix == ".csv" for p in tmp_path.iterdir())
    assert tracked_results_state() == before
    out = run(os.path.join(BENCHMARKS, script), "--smoke", "--device", "cpu", "--record", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(p.suffix == ".csv" for p in tmp_path.iterdir())


def test_bench_data_tiny(tmp_path):
    before = tracked_results_state()
    out = run(os.path.join(BENCHMARKS, "bench_data.py"), "--records", "20", "--boxes", "4", "--samples", "40",
              "--batch-size", "4", "--workers", "0", "--convert-records", "10")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "store samples/s" in out.stdout
    assert tracked_results_state() == before


def test_bench_eval_smoke(tmp_path):
    """VQA examples/s per head, retrieval full and two-stage ITM pairs/s with their pass counts, and the
    Flickr30K pass counts (formula, not timings), in the table and in DIR/eval.csv."""
    before = tracked_results_state()
    out = run(os.path.join(BENCHMARKS, "bench_eval.py"), "--smoke", "--device", "cpu", "--record", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("examples/s", "ITM pairs/s", "ITM passes", "counts from the formula, not timings"):
        assert text in out.stdout
    with open(tmp_path / "eval.csv", newline="") as f:
        records = list(csv.DictReader(f))
    by_mode = {(r["part"], r["mode"]): r for r in records}
    assert list(by_mode) == [("vqa", "answer_slot"), ("vqa", "pooled_mlp"), ("retrieval", "full"),
                             ("retrieval", "two_stage"), ("flickr30k", "full"), ("flickr30k", "two_stage")]
    assert all(records[0][c] for c in ("timestamp", "git", "device", "torch", "threads", "size"))
    assert all(float(r["per_s"]) > 0 for r in records if r["kind"] == "measured")
    # smoke grid: 3 images x 2 captions, k = 1; the answer slot adds [MASK] [SEP] to the question
    full, two = by_mode["retrieval", "full"], by_mode["retrieval", "two_stage"]
    assert int(full["itm_passes"]) == 6 * 3
    assert max(6, 3) <= int(two["itm_passes"]) <= int(two["itm_pass_bound"]) == 6 * 1 + 3 * 1
    assert float(by_mode["vqa", "answer_slot"]["text_tokens"]) == float(by_mode["vqa", "pooled_mlp"]["text_tokens"]) + 2
    flickr = by_mode["flickr30k", "two_stage"]
    assert by_mode["flickr30k", "full"]["itm_passes"] == "5000000" and flickr["kind"] == "count"
    assert (flickr["itm_passes_min"], flickr["itm_pass_bound"], flickr["embed_passes"]) == ("640000", "768000", "6000")
    assert tracked_results_state() == before


def test_gpu_suite_runs_end_to_end_on_the_cpu(tmp_path):
    """Every part at smoke sizes (build skipped): info, the GPU tests' selection, the op benchmarks,
    bench_model_step and bench_train; a report, CSV rows and plots in --out, nothing in the checkout."""
    before = tracked_results_state()
    out = run(os.path.join(BENCHMARKS, "gpu_suite.py"), "--out", str(tmp_path), "--device", "cpu", "--small",
              "--no-build", timeout=600)
    report = (tmp_path / "report.md").read_text()
    assert out.returncode == 0, report[-4000:]
    for part in ("info", "tests", "roi_align", "region_masking", "contrastive", "model_step"):
        assert f"| {part} | ok |" in report
    assert "| build | skipped: --no-build |" in report
    assert "| train | ok |" in report or "| train | skipped: not installed" in report
    for name in ("roi_align_masked.csv", "mask_pixels.csv", "region_masking.csv", "contrastive.csv",
                 "model_step.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    for name in ("roi_align_masked.png", "region_masking.png", "contrastive.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    assert tracked_results_state() == before


def test_gpu_suite_refuses_cuda_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = run(os.path.join(BENCHMARKS, "gpu_suite.py"), "--out", str(tmp_path), "--device", "cuda", timeout=120)
    assert out.returncode == 2 and "no CUDA device is visible" in out.stderr


def test_bench_vcr_memory_smoke():
    """Both paths measured in their own processes; the shared image costs less than four copies of it."""
    out = run(os.path.join(BENCHMARKS, "bench_vcr_memory.py"), "--trunk", "tiny", "--questions", "2", "--image",
              "192x320", "--regions", "4", "--text-len", "12", "--dtype", "bf16", "--checkpointing")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bf16, checkpointing" in out.stdout and "model states beside it" in out.stdout
    ratio = float(out.stdout.split("shared / repeated = ")[1].split()[0])
    assert ratio < 1
