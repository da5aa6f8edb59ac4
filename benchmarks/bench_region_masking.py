"""Benchmark: IoU-neighbourhood region masking, and the whole masking step of a batch.

Part 1, ``iou_neighbourhood_mask`` on B = 256 images with N = 36, 100 and 300
boxes (10..N valid per image, anchors drawn at 15%, IoU > 0.4). Providers:
    numpy_loop        InterBERT's data loader: per image, the N x N IoU matrix in
                      numpy, then the anchors' columns (inputs already numpy arrays)
    torchvision_loop  per image, torchvision.ops.box_iou(boxes, anchor boxes) on the device
    reference         vlengine.ops.reference (pure PyTorch, anchors in chunks of 16)
    cpu / cuda / triton   vlengine's kernels
Time (median, p20-p80) and peak memory beyond the inputs.

Part 2, the whole masking step for a batch of 256 image-text pairs (64 tokens,
100 regions, half ITM negatives): each paper's policy from
``vlengine.data.masking.masking_for``, and for InterBERT also a per-sample
Python loop in the style of the released code (random.random per word, numpy
IoU per image).

Part 1's rows carry the roofline columns (``_roofline.iou_neighbourhood_cost``:
boxes, flags and mask moved once, 13 FLOPs per (valid box, valid anchor) pair).

    python benchmarks/bench_region_masking.py [--device cpu|cuda] [--sizes 36,100,300] [--repeats N]
        [--busy] [--record [DIR]] [--plot FILE.png] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (add_common_args, describe_peaks, device_peaks, measure, parse_common,  # noqa: E402
                     quiet_and_busy, report, unavailable)
from _roofline import anchor_pairs, iou_neighbourhood_cost  # noqa: E402

import vlengine.ops as ops  # noqa: E402
from vlengine.batch import IGNORE_INDEX, VLBatch  # noqa: E402
from vlengine.data.masking import (PAPERS, ConditionalMasking, IoURegionMasking, SpanMasking,  # noqa: E402
                                   masking_for)
from vlengine.ops import _backend  # noqa: E402

try:
    import torchvision
except ImportError:
    torchvision = None

BATCH = 256
THRESHOLD = 0.4
ANCHOR_PROB = 0.15


def make_regions(gen, b, n, device):
    """Pixel boxes on a 600 x 1000 image, 10..n valid per image, anchors at ANCHOR_PROB."""
    lo = min(10, n)
    counts = torch.randint(lo, n + 1, (b,), generator=gen)
    valid = torch.arange(n)[None, :] < counts[:, None]
    wh = 16 + torch.rand(b, n, 2, generator=gen) * torch.tensor([500.0, 300.0])
    xy = torch.rand(b, n, 2, generator=gen) * (torch.tensor([1000.0, 600.0]) - wh)
    boxes = torch.cat([xy, xy + wh], dim=-1)
    anchors = (torch.rand(b, n, generator=gen) < ANCHOR_PROB) & valid
    return boxes.to(device), valid.to(device), anchors.to(device)


def numpy_iou(a, b):
    """[N, 4] x [M, 4] IoU, vectorised over pairs (as InterBERT's loader computes it per image)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def numpy_loop(boxes, valid, anchors):
    out = np.zeros(valid.shape, dtype=bool)
    for img in range(valid.shape[0]):
        v = valid[img]
        iou = numpy_iou(boxes[img], boxes[img])                    # N x N per image
        a = anchors[img] & v
        out[img] = v & (a | (iou[:, a] > THRESHOLD).any(axis=1))
    return out


def torchvision_loop(boxes, valid, anchors):
    out = torch.zeros_like(valid)
    for img in range(valid.shape[0]):
        a = anchors[img] & valid[img]
        iou = torchvision.ops.box_iou(boxes[img], boxes[img][a])
        out[img] = valid[img] & (a | (iou > THRESHOLD).any(dim=1))
    return out


def bench_neighbourhood(device, sizes, repeats, warmup=2, batch=BATCH):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes:
        boxes, valid, anchors = make_regions(gen, batch, n, device)
        cost = iou_neighbourhood_cost(batch, n, anchor_pairs(valid, anchors), boxes.element_size())
        np_args = tuple(t.cpu().numpy() for t in (boxes, valid, anchors))
        expected = ops.iou_neighbourhood_mask(boxes, valid, anchors, THRESHOLD, backend="reference").cpu()
        case = f"B={batch} N={n}"
        providers = {
            "numpy_loop": lambda a=np_args: numpy_loop(*a),
            "torchvision_loop": lambda: torchvision_loop(boxes, valid, anchors),
        }
        for be in ("reference", "cpu", "cuda", "triton"):
            providers[be] = (lambda be: lambda: ops.iou_neighbourhood_mask(boxes, valid, anchors, THRESHOLD,
                                                                           backend=be))(be)
        for provider, fn in providers.items():
            why = None
            if provider == "torchvision_loop" and torchvision is None:
                why = "torchvision not installed"
            elif provider in ("cpu", "cuda", "triton"):
                why = _backend.reason_unavailable(provider, torch.device(device), "iou_neighbourhood_mask")
                if provider == "triton" and device == "cpu":
                    why = "Triton on the CPU is the interpreter (tests only)"
            if why:
                rows.append(unavailable("iou_neighbourhood_mask", case, provider, "forward", why, size=f"N={n}"))
                continue
            got = torch.as_tensor(fn()).cpu()
            note = "" if torch.equal(got, expected) else "MISMATCH vs reference"
            if provider == "numpy_loop":
                note = (note + " host numpy").strip()
            rows.append(measure("iou_neighbourhood_mask", case, provider, "forward", fn,
                                "cpu" if provider == "numpy_loop" else device, repeats=repeats, warmup=warmup,
                                note=note, cost=cost, size=f"N={n}"))
    return rows


# ---- part 2: the whole masking step ----

def make_pairs(gen, b, t, r, device, classes=1601, dim=2048):
    lengths = torch.randint(8, t + 1, (b,), generator=gen)
    pos = torch.arange(t)[None, :]
    text_mask = pos < lengths[:, None]
    ids = torch.where(text_mask, torch.randint(1000, 30522, (b, t), generator=gen), torch.zeros(b, t, dtype=torch.long))
    ids[:, 0] = 101
    ids[torch.arange(b), lengths - 1] = 102
    inner = (pos >= 1) & (pos < lengths[:, None] - 1)
    starts = (torch.rand(b, t, generator=gen) < 0.7) | (pos == 1)
    word_ids = torch.where(inner, torch.cumsum(starts & inner, 1) - 1, torch.full((b, t), -1))
    boxes, valid, _ = make_regions(gen, b, r, "cpu")
    batch = VLBatch(input_ids=ids, text_mask=text_mask, word_ids=word_ids,
                    region_features=torch.randn(b, r, dim, generator=gen), region_boxes=boxes, region_valid=valid,
                    region_labels=torch.randint(0, classes, (b, r), generator=gen),
                    region_soft_labels=torch.rand(b, r, classes, generator=gen),
                    itm_label=(torch.arange(b) % 2).long())
    return batch.to(device)


def interbert_per_sample(samples, rng):
    """The released code's shape: a Python loop per sample, random.random per word, numpy IoU per image."""
    out = []
    for ids, n_tokens, boxes, n_boxes, features, itm in samples:
        ids = ids.copy()
        labels = np.full(len(ids), IGNORE_INDEX)
        region_mask = np.zeros(len(boxes), dtype=bool)
        if itm:
            i = 1
            while i < n_tokens - 1:
                if rng.random() < 0.1:
                    for j in range(i, min(i + 1 + rng.randint(0, 2), n_tokens - 1)):
                        labels[j] = ids[j]
                        p = rng.random()
                        ids[j] = 103 if p < 0.8 else (rng.randint(104, 30521) if p < 0.9 else ids[j])
                i += 1
            anchors = np.array([rng.random() < ANCHOR_PROB for _ in range(n_boxes)], dtype=bool)
            iou = numpy_iou(boxes[:n_boxes], boxes[:n_boxes])
            region_mask[:n_boxes] = anchors | (iou[:, anchors] > THRESHOLD).any(axis=1)
            features = features.copy()
            features[region_mask] = 0
        out.append((ids, labels, region_mask, features))
    return out


def bench_masking_step(device, repeats, t=64, r=100, pairs=BATCH):
    gen = torch.Generator().manual_seed(2)
    batch = make_pairs(gen, pairs, t, r, device)
    case = f"{pairs} pairs T={t} R={r}"
    rows = []
    cpu = batch.to("cpu")
    samples = [(cpu.input_ids[i].numpy(), int(cpu.text_mask[i].sum()), cpu.region_boxes[i].numpy(),
                int(cpu.region_valid[i].sum()), cpu.region_features[i].numpy(), bool(cpu.itm_label[i]))
               for i in range(pairs)]
    py_rng = random.Random(0)
    rows.append(measure("masking_step", case, "interbert per-sample python", "step",
                        lambda: interbert_per_sample(samples, py_rng), "cpu", repeats=repeats, memory=False,
                        note="host"))
    for paper in PAPERS:
        policy = masking_for(paper, 30522)
        g = torch.Generator(device=device).manual_seed(0)
        rows.append(measure("masking_step", case, paper, "step", lambda p=policy: p(batch, g), device,
                            repeats=repeats, memory=False))
    # InterBERT with the masked features zeroed in the batch itself (no 200 MB copy per step).
    policy = ConditionalMasking((SpanMasking(30522), IoURegionMasking(inplace_features=True)))
    g = torch.Generator(device=device).manual_seed(0)
    rows.append(measure("masking_step", case, "interbert inplace", "step", lambda: policy(batch, g), device,
                        repeats=repeats, memory=False, note="features zeroed in place"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="36,100,300", smoke_sizes="12", sizes_help="boxes per image N")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per batch (default {BATCH})")
    parser.add_argument("--skip-step", action="store_true", help="only the IoU-neighbourhood op")
    args = parse_common(parser, argv)
    if args.smoke:
        args.batch = 8
    try:
        sizes = [int(s) for s in args.size_list]
    except ValueError:
        parser.error(f"--sizes takes integers (boxes per image), got {args.sizes!r}")
    peaks = device_peaks(args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__}")
    print(describe_peaks(peaks))
    rows = quiet_and_busy(lambda: bench_neighbourhood(args.device, sizes, args.repeats, args.warmup, args.batch),
                          args.busy)
    report("region_masking", rows, args, baseline="numpy_loop", peaks=peaks, title="iou_neighbourhood_mask")
    if not args.skip_step:
        step = quiet_and_busy(lambda: bench_masking_step(args.device, args.repeats, pairs=args.batch,
                                                         r=max(sizes)), args.busy)
        print()
        args.plot = None  # the plot shows the op; the masking step has one size
        report("region_masking", step, args, baseline="interbert per-sample python", peaks=peaks)


if __name__ == "__main__":
    main()
