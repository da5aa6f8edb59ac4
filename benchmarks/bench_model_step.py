"""One VL-BERT pretraining step (forward + backward; ``--optimizer`` adds AdamW) at VL-BERT's shapes: fused path vs plain path.

Paths (the same model and losses; only how they are computed differs):
  fused   packed sequences ([CLS] text [SEP] regions [END] back to back), dense layers on real tokens
          only, fused-QKV attention on scaled_dot_product_attention, MLM projected at masked rows only
          with chunked linear + cross-entropy, one batched ``mask_pixels`` call (end-to-end mode)
  plain   every part padded to the batch's widest (text, regions), eager softmax(QK^T) attention,
          MLM over the full vocabulary at every text position, per-box Python pixel masking
  packed  the released VL-BERT's layout (parts packed, rows padded) with eager attention and the
          full-vocabulary MLM: shows how much of the gain packing alone gives (``--paths`` to run it)

Batches: text 10-40 WordPieces, 10-100 regions per image (VL-BERT's detector output), 15% of
tokens and regions masked (soft 1601-class region targets). Losses: MLM + masked region
classification, VL-BERT's released pair.

MFU = tokens/s x (6 N + 12 L h s) / peak, per token, with N the non-embedding parameters applied
to every token (encoder + region projection), L layers, h hidden size, s the mean real sequence
length. Peak: ``vlengine.hardware``'s table (the GPU's dense bf16 / fp16 tensor datasheet rate, the same
peak as training's MFU); on a CPU the measured fp32 matmul rate of this machine.
The paths of one size run in one process with their steps interleaved (fused, plain, fused, ...), so
load drift on a shared machine hits them alike; peak memory is measured per path in a fresh process.

    python benchmarks/bench_model_step.py                      # CPU: base + large, reduced batch
    python benchmarks/bench_model_step.py --device cuda        # bf16 autocast, full batch
    python benchmarks/bench_model_step.py --device cuda --precision fp16   # fp16 autocast (the V100 path)
    python benchmarks/bench_model_step.py --end-to-end --paths pixels,features,composition   # masking paths
    python benchmarks/bench_model_step.py --end-to-end --paths pixels,features,composition --sizes tiny \
        --trunk tiny8 --image-size 128,128 --batch 32                # the CPU main job's end-to-end shapes

End-to-end paths (``--end-to-end``; model/visual/frontend.py and _visual_paths.py): ``pixels`` (one
batched mask_pixels call), ``features`` (masking on the C4 map in roi_align_masked), ``composition``
(a masked copy of the input + torchvision's roi_align); "vs base" is against composition there.

Nothing is written unless ``--record [DIR]`` is given (rows go to DIR/model_step.csv, default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import RESULTS_DIR, append_records, device_name, git_revision, peak_memory, time_fn  # noqa: E402
from _visual_paths import TRUNKS, build_frontend  # noqa: E402

from vlengine.batch import IGNORE_INDEX, VLBatch  # noqa: E402
from vlengine.models import VLBert, VLConfig  # noqa: E402
from vlengine.models.heads import MaskedLMHead, RegionClassificationHead  # noqa: E402
from vlengine.training.throughput import peak_flops  # noqa: E402

PATHS = {
    "fused": dict(pack=True, unpad=True, attention="sdpa", fused_mlm=True, mask_mode="pixels"),
    "plain": dict(pack=False, unpad=False, attention="eager", fused_mlm=False, mask_mode="pixels_python"),
    "packed": dict(pack=True, unpad=False, attention="eager", fused_mlm=False, mask_mode="pixels_python"),
    # end to end only (--end-to-end): the fused encoder, the masked RoIs hidden three ways
    "pixels": dict(pack=True, unpad=True, attention="sdpa", fused_mlm=True, mask_mode="pixels"),
    "features": dict(pack=True, unpad=True, attention="sdpa", fused_mlm=True, mask_mode="feature_map"),
    "composition": dict(pack=True, unpad=True, attention="sdpa", fused_mlm=True, mask_mode="composition"),
}
END_TO_END_PATHS = ("pixels", "features", "composition")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_batch(config: VLConfig, batch: int, gen: torch.Generator, device, image_hw=None) -> VLBatch:
    text_len = torch.randint(10, 41, (batch,), generator=gen)
    regions = torch.randint(10, 101, (batch,), generator=gen)
    t, r = int(text_len.max()), int(regions.max())
    text_mask = torch.arange(t).unsqueeze(0) < text_len.unsqueeze(1)
    ids = torch.randint(1000, config.vocab_size, (batch, t), generator=gen).masked_fill(~text_mask, 0)
    valid = torch.arange(r).unsqueeze(0) < regions.unsqueeze(1)
    h, w = image_hw or (600, 800)
    xy = torch.rand(batch, r, 2, generator=gen) * torch.tensor([w * 0.7, h * 0.7])
    wh = 16 + torch.rand(batch, r, 2, generator=gen) * torch.tensor([w * 0.3 - 17, h * 0.3 - 17])
    boxes = torch.cat((xy, xy + wh), -1)
    pick = (torch.rand(batch, t, generator=gen) < 0.15) & text_mask
    pick[:, 1] = True
    mlm = torch.full((batch, t), IGNORE_INDEX).masked_scatter(
        pick, torch.randint(1000, config.vocab_size, (int(pick.sum()),), generator=gen))
    masked = (torch.rand(batch, r, generator=gen) < 0.15) & valid
    soft = torch.rand(batch, r, config.num_region_classes, generator=gen).softmax(-1)
    out = VLBatch(input_ids=ids, text_mask=text_mask, region_boxes=boxes, region_valid=valid,
                  image_size=torch.tensor([[float(h), float(w)]]).expand(batch, 2).clone(),
                  mlm_labels=mlm, region_masked=masked, region_soft_labels=soft)
    if image_hw is None:
        out = out.replace(region_features=torch.rand(batch, r, config.region_feature_size, generator=gen))
    else:
        out = out.replace(images=torch.randn(batch, 3, h, w, generator=gen))
    return out.to(device)


def peak_tflops(device: str) -> tuple[float, str]:
    """The MFU denominator training uses (vlengine.training.throughput.peak_flops), in TFLOP/s."""
    if device == "cpu":
        from vlengine.hardware import measured_cpu_matmul_flops
        return measured_cpu_matmul_flops(2048) / 1e12, "measured fp32 matmul 2048^3"
    peak, source = peak_flops(torch.device(device))
    return peak / 1e12, source


def model_config(size: str, **overrides) -> VLConfig:
    if size == "tiny":  # smoke runs: VL-BERT's feature and vocabulary sizes, a few narrow layers
        return VLConfig.tiny(region_feature_size=2048, vocab_size=30522, num_region_classes=1601, **overrides)
    return getattr(VLConfig, size)(**overrides)


def build(size: str, path: str, batch_size: int, device: str, end_to_end: bool, image_hw, optimizer_step: bool,
          precision: str = "bf16", trunk: str = "resnet101"):
    """(step function, batch, model) for one configuration; every path gets the same weights and batch."""
    settings = PATHS[path]
    config = model_config(size, pack=settings["pack"], unpad=settings["unpad"], attention=settings["attention"])
    visual = None
    if end_to_end:
        visual = build_frontend(trunk, settings["mask_mode"])
        if trunk.startswith("tiny"):
            config = dataclasses.replace(config, region_feature_size=visual.head.out_channels)
    elif path in END_TO_END_PATHS:
        raise SystemExit(f"path {path!r} is an end-to-end path: add --end-to-end")
    torch.manual_seed(0)
    model = VLBert(config, visual=visual).to(device).train()
    mlm = MaskedLMHead(config, model.embeddings.word_embeddings, fused=None if settings["fused_mlm"] else False)
    mlm = mlm.to(device)
    mrc = RegionClassificationHead(config).to(device)
    params = [p for m in (model, mlm, mrc) for p in m.parameters() if p.requires_grad]
    params = list({id(p): p for p in params}.values())          # the tied embedding once
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=device == "cuda")
    batch = make_batch(config, batch_size, torch.Generator().manual_seed(1), device,
                       image_hw if end_to_end else None)
    autocast = torch.autocast("cuda", dtype=AUTOCAST_DTYPES[precision]) if device == "cuda" else torch.autocast(
        "cpu", enabled=False)
    # fp16 needs loss scaling against underflow (DeepSpeed's dynamic scaler in training); a fixed scale
    # does the same arithmetic here, so the step costs what it costs in training
    loss_scale = 1024.0 if device == "cuda" and precision == "fp16" else 1.0

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = model(batch)
            if settings["fused_mlm"]:
                loss = mlm.loss(out.text, batch.mlm_labels)           # masked rows only
            else:
                loss = mlm.full_vocabulary_loss(out.text, batch.mlm_labels)
            loss = loss + mrc.loss(out.regions, batch.region_masked, soft_targets=batch.region_soft_labels)
        (loss * loss_scale).backward()
        if optimizer_step:
            optimizer.step()
    return step, batch, model


def run_size(size: str, paths: list[str], batch_size: int, device: str, steps: int, warmup: int,
             end_to_end: bool, image_hw, optimizer_step: bool, precision: str = "bf16",
             trunk: str = "resnet101") -> list[dict]:
    """Time every path of one model size, interleaving their steps (fused, plain, fused, plain, ...) so
    that load drift on a shared machine hits all paths alike; median per path."""
    built = {p: build(size, p, batch_size, device, end_to_end, image_hw, optimizer_step, precision, trunk)
             for p in paths}
    times = {p: [] for p in paths}
    for p in paths:
        for _ in range(warmup):
            built[p][0]()
    for _ in range(steps):
        for p in paths:
            times[p] += time_fn(built[p][0], device, warmup=0, repeats=1)
    results = []
    for p in paths:
        _, batch, model = built[p]
        tokens = int((batch.text_mask.sum(1) + batch.region_valid.sum(1) + 1).sum())   # text + regions + [END]
        s = tokens / batch_size
        config = model.config
        n = sum(q.numel() for q in model.encoder.parameters()) + \
            sum(q.numel() for q in model.region_projection.parameters())
        flops_per_token = 6 * n + 12 * config.num_layers * config.hidden_size * s
        median = statistics.median(times[p])
        results.append({
            "size": size, "path": p, "mode": f"e2e-{trunk}" if end_to_end else "features", "batch": batch_size,
            "mean_seq_len": round(s, 1),
            "padded_seq_len": int(batch.text_mask.shape[1] + batch.region_valid.shape[1] + 1),
            "step_ms_median": round(median * 1e3, 2), "step_ms_min": round(min(times[p]) * 1e3, 2),
            "step_ms_max": round(max(times[p]) * 1e3, 2), "steps": len(times[p]),
            "samples_per_s": round(batch_size / median, 3), "tokens_per_s": round(tokens / median, 1),
            "model_tflops_per_s": round(tokens / median * flops_per_token / 1e12, 4),
            "optimizer": optimizer_step, "dtype": f"{precision}-autocast" if device == "cuda" else "fp32",
            "threads": torch.get_num_threads()})
    return results


def peak_step_memory(size, path, batch_size, device, end_to_end, image_hw, optimizer_step, precision="bf16",
                     trunk="resnet101") -> float:
    """MB at peak during one step of a freshly built configuration (its own process: nothing cached)."""
    step, _, _ = build(size, path, batch_size, device, end_to_end, image_hw, optimizer_step, precision, trunk)
    return peak_memory(step, device) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="base,large", help="model sizes: tiny (smoke runs), base, large")
    parser.add_argument("--paths", default="fused,plain")
    parser.add_argument("--batch", type=int, default=None, help="rows per step (default: CPU 8 base / 4 large; "
                                                                "GPU 64 base / 32 large)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: CPU 3, GPU 20)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--end-to-end", action="store_true", help="raw images through ResNet-101 C4 + res5")
    parser.add_argument("--image-size", default="384,512", help="H,W in end-to-end mode")
    parser.add_argument("--trunk", default="resnet101", choices=sorted(TRUNKS),
                        help="end-to-end trunk: VL-BERT's ResNet-101 C4, or the CPU main job's tiny C4 at "
                             "stride 16 (tiny) or 8 (tiny8, main_job_e2e.yaml's); use --image-size 128,128")
    parser.add_argument("--optimizer", action="store_true", help="include the AdamW update in the step")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="bf16", choices=sorted(AUTOCAST_DTYPES),
                        help="autocast dtype on a GPU (the CPU runs fp32)")
    parser.add_argument("--record", nargs="?", const=RESULTS_DIR, default=None, metavar="DIR",
                        help="append the rows to DIR/model_step.csv (default benchmarks/results/); "
                             "without it nothing is written")
    parser.add_argument("--no-csv", action="store_true", help=argparse.SUPPRESS)  # the old default; now implied
    parser.add_argument("--smoke", action="store_true", help="the tiny model, batch 2, 1 step: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.batch, args.steps, args.warmup = "tiny", args.batch or 2, 1, 0
    gpu = args.device == "cuda"
    steps = args.steps or (20 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (3 if gpu else 1)
    image_hw = tuple(int(v) for v in args.image_size.split(","))

    if args.worker:   # result as JSON on the last line
        if args.memory_only:
            mb = peak_step_memory(args.sizes, args.paths, args.batch, args.device, args.end_to_end, image_hw,
                                  args.optimizer, args.precision, args.trunk)
            print(json.dumps({"peak_mem_mb": round(mb, 1)}))
        else:
            print(json.dumps(run_size(args.sizes, args.paths.split(","), args.batch, args.device, steps, warmup,
                                      args.end_to_end, image_hw, args.optimizer, args.precision, args.trunk)))
        return

    # one peak for every configuration (measured here, before the runs, on a CPU)
    peak, peak_source = peak_tflops(args.device)
    results = []

    def worker(size, paths, batch, extra):
        command = [sys.executable, os.path.abspath(__file__), "--worker", "--device", args.device, "--sizes", size,
                   "--paths", paths, "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup),
                   "--image-size", args.image_size, "--precision", args.precision, "--trunk", args.trunk, *extra]
        if args.end_to_end:
            command.append("--end-to-end")
        if args.optimizer:
            command.append("--optimizer")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{size}/{paths} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return None
        return json.loads(done.stdout.strip().splitlines()[-1])

    for size in args.sizes.split(","):
        batch = args.batch or {"tiny": 8, "base": 64 if gpu else 8, "large": 32 if gpu else 4}[size]
        timed = worker(size, args.paths, batch, [])
        if timed is None:
            continue
        for r in timed:
            memory = worker(size, r["path"], batch, ["--memory-only"])
            r.update(peak_mem_mb=memory["peak_mem_mb"] if memory else None, peak_tflops=round(peak, 4),
                     peak_source=peak_source, mfu=round(r["model_tflops_per_s"] / peak, 4) if peak == peak else None)
            results.append(r)
            print(f"  {size:<6} {r['path']:<7} {r['step_ms_median']:>10.1f} ms/step", flush=True)

    print(f"\n{'size':<6} {'path':<7} {'mode':<10} {'batch':>5} {'seq':>6} {'step ms':>10} {'samples/s':>10} "
          f"{'tokens/s':>10} {'peak MB':>9} {'TFLOP/s':>8} {'MFU':>7} {'vs base':>8}")
    for r in results:
        # the baseline: the plain path, or in end-to-end mode the composition of library ops
        plain = next((p for p in results if p["size"] == r["size"] and p["path"] in ("plain", "composition")), None)
        speedup = f"{r['samples_per_s'] / plain['samples_per_s']:.2f}x" if plain else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        print(f"{r['size']:<6} {r['path']:<7} {r['mode']:<10} {r['batch']:>5} {r['mean_seq_len']:>6} "
              f"{r['step_ms_median']:>10.1f} {r['samples_per_s']:>10.2f} {r['tokens_per_s']:>10.0f} "
              f"{r['peak_mem_mb'] or float('nan'):>9.0f} {r['model_tflops_per_s']:>8.3f} {mfu:>7} {speedup:>8}")
    if results:
        print(f"peak: {results[0]['peak_tflops']} TFLOP/s ({results[0]['peak_source']}); device "
              f"{device_name(args.device)}; threads {results[0]['threads']}")
    if results and args.record:
        meta = {"timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "git": git_revision(), "device": device_name(args.device), "torch": torch.__version__}
        path = append_records(os.path.join(args.record, "model_step.csv"), [{**meta, **r} for r in results])
        print(f"appended {len(results)} rows to {path}")


if __name__ == "__main__":
    main()
