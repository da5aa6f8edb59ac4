"""Benchmark: RoIAlign fused with pixel masking, and batched mask_pixels.

Providers:
    composition  what a user writes today: clone the map, zero each masked box with
                 a Python slice (VL-BERT's loop, on the stride-16 map), then
                 torchvision.ops.roi_align
    reference    vlengine.ops.reference (pure PyTorch)
    cpu / cuda / triton   vlengine's kernels

Cases: VL-BERT's shapes (8 images, 1024 channels, a 38 x 63 map at stride 16,
100 RoIs and 15 masked boxes per image, 14 x 14 output, sampling ratio 1,
legacy alignment), a smaller and a larger one. Then mask_pixels on 32 images of
3 x 600 x 1000 with 15 boxes each against the per-box slicing loop of VL-BERT's
data loader.

Per row the roofline columns: bytes and FLOPs from ``_roofline.roi_align_cost`` /
``mask_pixels_cost`` (the map read once, the output written once; 8 FLOPs per
bilinear sample), achieved GB/s and TFLOP/s, and their fraction of the device's
peak (``vlengine.hardware``).

    python benchmarks/bench_roi_align_masked.py [--device cpu|cuda] [--sizes small,vlbert,large] [--repeats N]
        [--busy] [--record [DIR]] [--plot FILE.png] [--smoke]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (add_common_args, describe_peaks, device_peaks, measure, parse_common,  # noqa: E402
                     quiet_and_busy, report, sibling_path, unavailable)
from _roofline import covered_pixels, mask_pixels_cost, roi_align_cost  # noqa: E402

import vlengine.ops as ops  # noqa: E402
from vlengine.ops import _backend  # noqa: E402

try:
    import torchvision
except ImportError:  # the composition needs it
    torchvision = None

CASES = {
    # name: (images, channels, map h, map w, rois per image, masked per image, output)
    "tiny": (1, 16, 10, 12, 8, 2, 7),
    "small": (2, 256, 25, 38, 32, 5, 7),
    "vlbert": (8, 1024, 38, 63, 100, 15, 14),
    "large": (16, 1024, 50, 84, 300, 30, 14),
}
STRIDE = 16
SAMPLING_RATIO = 1
# mask_pixels: name -> (images, height, width, boxes per image), 3 channels
MASK_CASES = {"tiny": (2, 60, 100, 5), "vlbert": (32, 600, 1000, 15)}


def make_boxes(gen, n, per_image, img_h, img_w, device, min_size=16.0):
    k = n * per_image
    w = min_size + torch.rand(k, generator=gen) * (img_w / 2)
    h = min_size + torch.rand(k, generator=gen) * (img_h / 2)
    x1 = torch.rand(k, generator=gen) * (img_w - w)
    y1 = torch.rand(k, generator=gen) * (img_h - h)
    idx = torch.arange(n).repeat_interleave(per_image).float()
    return torch.stack([idx, x1, y1, x1 + w, y1 + h], 1).to(device)


def composition(features, rois, masked, out, scale):
    """Mask a copy of the map box by box (floor rule on the map grid), then torchvision."""
    x = features.clone()
    for b, x1, y1, x2, y2 in masked.tolist():
        x[int(b), :, math.floor(y1 * scale):math.floor(y2 * scale) + 1,
          math.floor(x1 * scale):math.floor(x2 * scale) + 1] = 0
    return torchvision.ops.roi_align(x, rois, out, scale, 1, False)


def bench_roi_align(device, case_names, repeats, warmup=2):
    gen = torch.Generator().manual_seed(0)
    rows = []
    scale = 1.0 / STRIDE
    for name in case_names:
        n, c, h, w, per_img, per_mask, out = CASES[name]
        feats = torch.randn(n, c, h, w, generator=gen).to(device)
        rois = make_boxes(gen, n, per_img, h * STRIDE, w * STRIDE, device)
        masked = make_boxes(gen, n, per_mask, h * STRIDE, w * STRIDE, device)
        grad = torch.randn(rois.shape[0], c, out, out, generator=gen).to(device)
        case = f"{name} {n}x{c}x{h}x{w} K={rois.shape[0]}"
        cost = {m: roi_align_cost(n, c, h, w, rois.shape[0], out, SAMPLING_RATIO, masked.shape[0], 4, m)
                for m in ("forward", "backward", "both")}
        providers = {"composition": lambda f: composition(f, rois, masked, out, scale)}
        providers["reference"] = lambda f: ops.roi_align_masked(f, rois, masked, out, scale, 1, backend="reference")
        for be in ("cpu", "cuda", "triton"):
            providers[be] = (lambda be: lambda f: ops.roi_align_masked(f, rois, masked, out, scale, 1, backend=be))(be)
        for provider, fn in providers.items():
            why = None
            if provider == "composition" and torchvision is None:
                why = "torchvision not installed"
            elif provider in ("cpu", "cuda", "triton"):
                why = _backend.reason_unavailable(provider, torch.device(device), "roi_align_masked")
                if provider == "triton" and device == "cpu":
                    why = "Triton on the CPU is the interpreter (tests only)"
            if provider == "reference" and name == "large" and device == "cpu":
                why = "skipped: the oracle gathers every tap (tens of GB here)"
            if why:
                rows += [unavailable("roi_align_masked", case, provider, m, why, size=name)
                         for m in ("forward", "backward", "both")]
                continue
            x = feats.detach().requires_grad_()
            y = fn(x)

            def backward_only(y=y, x=x):
                return torch.autograd.grad(y, x, grad, retain_graph=True)

            def both(fn=fn):
                xx = feats.detach().requires_grad_()
                return torch.autograd.grad(fn(xx), xx, grad)

            with torch.no_grad():
                rows.append(measure("roi_align_masked", case, provider, "forward", lambda: fn(feats), device,
                                    repeats=repeats, warmup=warmup, cost=cost["forward"], size=name))
            rows.append(measure("roi_align_masked", case, provider, "backward", backward_only, device,
                                repeats=repeats, warmup=warmup, cost=cost["backward"], size=name))
            rows.append(measure("roi_align_masked", case, provider, "both", both, device, repeats=repeats,
                                warmup=warmup, cost=cost["both"], size=name))
            del y
    return rows


def vlbert_loader_loop(images, boxes):
    """VL-BERT's data loader: for each masked box, image[:, y1:y2+1, x1:x2+1] = 0 (in place)."""
    for b, x1, y1, x2, y2 in boxes.tolist():
        images[int(b), :, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = 0
    return images


def bench_mask_pixels(device, case_names, repeats, warmup=2):
    gen = torch.Generator().manual_seed(1)
    rows = []
    for name in case_names:
        if name not in MASK_CASES:
            continue
        n, h, w, per = MASK_CASES[name]
        images = torch.randn(n, 3, h, w, generator=gen).to(device)
        boxes = make_boxes(gen, n, per, h, w, device)
        case = f"{n}x3x{h}x{w} K={boxes.shape[0]}"
        cost = mask_pixels_cost(3, covered_pixels(boxes, h, w), images.element_size(), boxes.shape[0])
        rows.append(measure("mask_pixels", case, "python_loop", "inplace", lambda: vlbert_loader_loop(images, boxes),
                            device, repeats=repeats, warmup=warmup, cost=cost, size=name))
        for be in ("reference", "cpu", "cuda", "triton"):
            why = _backend.reason_unavailable(be, torch.device(device), "mask_pixels")
            if be == "triton" and device == "cpu":
                why = "Triton on the CPU is the interpreter (tests only)"
            if why:
                rows.append(unavailable("mask_pixels", case, be, "inplace", why, size=name))
                continue
            rows.append(measure("mask_pixels", case, be, "inplace",
                                lambda be=be: ops.mask_pixels(images, boxes, 0.0, inplace=True, backend=be), device,
                                repeats=repeats, warmup=warmup, cost=cost, size=name))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="small,vlbert,large", smoke_sizes="tiny",
                    sizes_help=f"RoIAlign cases {','.join(CASES)}; mask_pixels runs the ones of "
                               f"{','.join(MASK_CASES)} among them")
    parser.add_argument("--skip-mask-pixels", action="store_true")
    parser.add_argument("--cases", dest="sizes", help=argparse.SUPPRESS)  # the flag's earlier name
    args = parse_common(parser, argv)
    unknown = [c for c in args.size_list if c not in CASES]
    if unknown:
        parser.error(f"--sizes: unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    peaks = device_peaks(args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(describe_peaks(peaks))
    rows = quiet_and_busy(lambda: bench_roi_align(args.device, args.size_list, args.repeats, args.warmup),
                          args.busy)
    report("roi_align_masked", rows, args, baseline="composition", peaks=peaks,
           title="roi_align_masked forward+backward")
    if not args.skip_mask_pixels:
        mp = quiet_and_busy(lambda: bench_mask_pixels(args.device, args.size_list, args.repeats, args.warmup),
                            args.busy)
        if mp:
            print()
            report("mask_pixels", mp, args, baseline="python_loop", peaks=peaks, title="mask_pixels in place",
                   plot_path=sibling_path(args.plot, "mask_pixels") if args.plot else None)


if __name__ == "__main__":
    main()
