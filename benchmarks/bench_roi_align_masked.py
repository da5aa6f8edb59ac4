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

    python benchmarks/bench_roi_align_masked.py [--device cpu|cuda] [--cases vlbert,small,large] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import append_csv, measure, print_table, unavailable  # noqa: E402

import vlengine.ops as ops  # noqa: E402
from vlengine.ops import _backend  # noqa: E402

try:
    import torchvision
except ImportError:  # the composition needs it
    torchvision = None

CASES = {
    # name: (images, channels, map h, map w, rois per image, masked per image, output)
    "small": (2, 256, 25, 38, 32, 5, 7),
    "vlbert": (8, 1024, 38, 63, 100, 15, 14),
    "large": (16, 1024, 50, 84, 300, 30, 14),
}
STRIDE = 16


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
                rows += [unavailable("roi_align_masked", case, provider, m, why) for m in ("forward", "backward", "both")]
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
                                    repeats=repeats, warmup=warmup))
            rows.append(measure("roi_align_masked", case, provider, "backward", backward_only, device,
                                repeats=repeats, warmup=warmup))
            rows.append(measure("roi_align_masked", case, provider, "both", both, device, repeats=repeats,
                                warmup=warmup))
            del y
    return rows


def vlbert_loader_loop(images, boxes):
    """VL-BERT's data loader: for each masked box, image[:, y1:y2+1, x1:x2+1] = 0 (in place)."""
    for b, x1, y1, x2, y2 in boxes.tolist():
        images[int(b), :, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = 0
    return images


def bench_mask_pixels(device, repeats):
    gen = torch.Generator().manual_seed(1)
    n, h, w, per = 32, 600, 1000, 15
    images = torch.randn(n, 3, h, w, generator=gen).to(device)
    boxes = make_boxes(gen, n, per, h, w, device)
    case = f"{n}x3x{h}x{w} K={boxes.shape[0]}"
    rows = [measure("mask_pixels", case, "python_loop", "inplace", lambda: vlbert_loader_loop(images, boxes), device,
                    repeats=repeats)]
    for be in ("reference", "cpu", "cuda", "triton"):
        why = _backend.reason_unavailable(be, torch.device(device), "mask_pixels")
        if be == "triton" and device == "cpu":
            why = "Triton on the CPU is the interpreter (tests only)"
        if why:
            rows.append(unavailable("mask_pixels", case, be, "inplace", why))
            continue
        rows.append(measure("mask_pixels", case, be, "inplace",
                            lambda be=be: ops.mask_pixels(images, boxes, 0.0, inplace=True, backend=be), device,
                            repeats=repeats))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default="small,vlbert,large")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-mask-pixels", action="store_true")
    args = parser.parse_args(argv)
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    rows = bench_roi_align(args.device, args.cases.split(","), args.repeats, args.warmup)
    print_table(rows, baseline="composition")
    print(f"\nCSV: {append_csv('roi_align_masked', rows, args.device)}")
    if not args.skip_mask_pixels:
        mp = bench_mask_pixels(args.device, args.repeats)
        print()
        print_table(mp, baseline="python_loop")
        print(f"\nCSV: {append_csv('mask_pixels', mp, args.device)}")


if __name__ == "__main__":
    main()
