"""The op benchmarks under pytest-benchmark: one benchmark per (op, mode, provider), grouped by op, mode and
size, so ``--benchmark-compare`` and ``--benchmark-json`` / ``--benchmark-autosave`` work as usual.

    python -m pytest benchmarks --benchmark-only                          # tiny sizes, the visible device
    python -m pytest benchmarks --benchmark-only --bench-size readme --bench-device cuda --benchmark-autosave

Each benchmark's ``extra_info`` holds the op's compulsory bytes and FLOPs (``_roofline``) and, after the
run, the achieved GB/s and TFLOP/s at the median and their fractions of the device's peaks.
The providers and inputs are the scripts' own (bench_*.py), so both report the same thing.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pytest_benchmark")

import bench_contrastive  # noqa: E402
import bench_region_masking as region  # noqa: E402
import bench_roi_align_masked as roi  # noqa: E402
from _roofline import (anchor_pairs, contrastive_cost, covered_pixels, iou_neighbourhood_cost,  # noqa: E402
                       mask_pixels_cost, roi_align_cost)

import vlengine.ops as ops  # noqa: E402
from vlengine.hardware import device_peaks  # noqa: E402
from vlengine.ops import _backend  # noqa: E402

BACKENDS = ("reference", "cpu", "cuda", "triton")
ROI_SIZES = {"tiny": "tiny", "small": "small", "readme": "vlbert"}
MASK_SIZES = {"tiny": (2, 60, 100, 5), "small": (8, 300, 500, 15), "readme": roi.MASK_CASES["vlbert"]}
IOU_SIZES = {"tiny": (8, 12), "small": (256, 36), "readme": (256, 100)}
CONTRASTIVE_SIZES = {"tiny": (64, 32), "small": (1024, 256), "readme": (4096, 768)}


def skip_unless_available(provider: str, device: str, op: str) -> None:
    if provider in BACKENDS:
        if provider == "triton" and device == "cpu":
            pytest.skip("Triton on the CPU is the interpreter (tests only)")
        why = _backend.reason_unavailable(provider, torch.device(device), op)
        if why:
            pytest.skip(why)
    elif provider in ("composition", "torchvision_loop") and roi.torchvision is None:
        pytest.skip("torchvision not installed")


def run(benchmark, fn, device, group, cost, dtype="fp32"):
    """Benchmark ``fn`` (synchronised on a GPU) and attach the roofline numbers to the result."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed():
        out = fn()
        sync()
        return out

    benchmark.group = group
    benchmark.extra_info.update(bytes=cost.bytes, flops=cost.flops, dtype=dtype)
    result = benchmark(timed)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.median > 0:
        peaks = device_peaks(device)
        seconds = stats.stats.median
        gbs, tflops = cost.bytes / seconds / 1e9, cost.flops / seconds / 1e12
        benchmark.extra_info.update(gbs=gbs, tflops=tflops, bw_frac=gbs / peaks.bandwidth_gbs,
                                    flop_frac=tflops * 1e12 / peaks.flops_per_s(dtype), peak_source=peaks.source)
    return result


@pytest.mark.parametrize("mode", ["forward", "both"])
@pytest.mark.parametrize("provider", ["composition", *BACKENDS])
def test_roi_align_masked(benchmark, bench_device, bench_size, provider, mode):
    skip_unless_available(provider, bench_device, "roi_align_masked")
    name = ROI_SIZES[bench_size]
    n, c, h, w, per_img, per_mask, out = roi.CASES[name]
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(n, c, h, w, generator=gen).to(bench_device)
    rois = roi.make_boxes(gen, n, per_img, h * roi.STRIDE, w * roi.STRIDE, bench_device)
    masked = roi.make_boxes(gen, n, per_mask, h * roi.STRIDE, w * roi.STRIDE, bench_device)
    scale = 1.0 / roi.STRIDE
    if provider == "composition":
        def fn(x):
            return roi.composition(x, rois, masked, out, scale)
    else:
        def fn(x):
            return ops.roi_align_masked(x, rois, masked, out, scale, roi.SAMPLING_RATIO, backend=provider)
    cost = roi_align_cost(n, c, h, w, rois.shape[0], out, roi.SAMPLING_RATIO, masked.shape[0], 4, mode)
    if mode == "forward":
        def call():
            with torch.no_grad():
                return fn(feats)
    else:
        grad = torch.randn(rois.shape[0], c, out, out, generator=gen).to(bench_device)

        def call():
            x = feats.detach().requires_grad_()
            return torch.autograd.grad(fn(x), x, grad)
    run(benchmark, call, bench_device, f"roi_align_masked {mode} {name}", cost)


@pytest.mark.parametrize("provider", ["python_loop", *BACKENDS])
def test_mask_pixels(benchmark, bench_device, bench_size, provider):
    skip_unless_available(provider, bench_device, "mask_pixels")
    n, h, w, per = MASK_SIZES[bench_size]
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, h, w, generator=gen).to(bench_device)
    boxes = roi.make_boxes(gen, n, per, h, w, bench_device)
    cost = mask_pixels_cost(3, covered_pixels(boxes, h, w), images.element_size(), boxes.shape[0])
    if provider == "python_loop":
        def call():
            return roi.vlbert_loader_loop(images, boxes)
    else:
        def call():
            return ops.mask_pixels(images, boxes, 0.0, inplace=True, backend=provider)
    run(benchmark, call, bench_device, f"mask_pixels inplace {n}x3x{h}x{w}", cost)


@pytest.mark.parametrize("provider", ["numpy_loop", "torchvision_loop", *BACKENDS])
def test_iou_neighbourhood_mask(benchmark, bench_device, bench_size, provider):
    skip_unless_available(provider, bench_device, "iou_neighbourhood_mask")
    b, n = IOU_SIZES[bench_size]
    boxes, valid, anchors = region.make_regions(torch.Generator().manual_seed(0), b, n, bench_device)
    cost = iou_neighbourhood_cost(b, n, anchor_pairs(valid, anchors), boxes.element_size())
    expected = ops.iou_neighbourhood_mask(boxes, valid, anchors, region.THRESHOLD, backend="reference").cpu()
    if provider == "numpy_loop":
        args = tuple(t.cpu().numpy() for t in (boxes, valid, anchors))

        def call():
            return region.numpy_loop(*args)
    elif provider == "torchvision_loop":
        def call():
            return region.torchvision_loop(boxes, valid, anchors)
    else:
        def call():
            return ops.iou_neighbourhood_mask(boxes, valid, anchors, region.THRESHOLD, backend=provider)
    got = run(benchmark, call, bench_device if provider != "numpy_loop" else "cpu",
              f"iou_neighbourhood_mask B={b} N={n}", cost)
    assert torch.equal(torch.as_tensor(got).cpu(), expected), f"{provider} disagrees with the reference"


@pytest.mark.parametrize("provider", ["materialised", *BACKENDS])
def test_contrastive_loss(benchmark, bench_device, bench_size, provider):
    skip_unless_available(provider, bench_device, "contrastive_loss_stats")
    batch, dim = CONTRASTIVE_SIZES[bench_size]
    device = bench_device if provider != "cpu" else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    t = torch.randn(batch, dim, device=device, generator=gen, requires_grad=True)
    v = torch.randn(batch, dim, device=device, generator=gen, requires_grad=True)
    fn = bench_contrastive._loss_fn(provider, "infonce", 0.07)

    def call():
        return torch.autograd.grad(fn(t, v), (t, v))
    run(benchmark, call, device, f"contrastive_loss infonce both B={batch} d={dim}", contrastive_cost(batch, dim, 4))
