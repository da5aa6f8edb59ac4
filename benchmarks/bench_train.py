"""Throughput of full DeepSpeed training steps per recipe and size: samples/s, tokens/s, MFU.

A step is the whole thing: masking (the recipe's policies), forward, backward,
ZeRO reduction and the optimizer, through `vlengine.training.loop.train`. Inputs
are synthetic batches with VL-BERT's shapes (text + regions with 2048-d
features); the first half of the steps warms up, the second half is measured.
MFU counts 6 x trainable non-embedding parameters x tokens per step against the GPU's dense
bf16/fp16 peak (``vlengine.hardware``'s datasheet table), or on a CPU against the measured fp32
matmul rate of this machine.

    DS_ACCELERATOR=cpu python benchmarks/bench_train.py                       # tiny models on the CPU
    python benchmarks/bench_train.py --sizes base large --precision bf16 --micro-batch 64 --steps 40   # a GPU
    deepspeed --num_gpus 8 benchmarks/bench_train.py --sizes base --precision bf16 --micro-batch 64  # 8 GPUs

``--record [DIR]`` appends the rows to DIR/train.csv (default benchmarks/results/) with the git
revision and device; without it nothing is written. ``--smoke``: one recipe, 2 steps of 2 rows.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")


class SyntheticPairs(torch.utils.data.Dataset):
    """Caption-image items with random content and the shapes of real data (fixed per index)."""

    def __init__(self, size: int, vocab: int, text_len: int, regions: int, features: int, classes: int):
        self.size, self.vocab, self.text_len, self.regions = size, vocab, text_len, regions
        self.features, self.classes = features, classes

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        _, index = index if isinstance(index, tuple) else (0, index)
        rng = np.random.default_rng(index)
        t = self.text_len
        words = rng.integers(104, self.vocab, t - 2)
        xy = rng.uniform(0, 400, (self.regions, 2))
        wh = rng.uniform(16, 200, (self.regions, 2))
        boxes = np.concatenate([xy, np.minimum(xy + wh, 599)], 1).astype(np.float32)
        boxes[0] = (0, 0, 599, 599)
        return {"input_ids": np.concatenate([[101], words, [102]]).astype(np.int64),
                "word_ids": np.concatenate([[-1], np.arange(t - 2), [-1]]).astype(np.int64),
                "itm_label": int(rng.random() < 0.5), "image_size": np.array([600, 600], np.float32),
                "boxes": boxes, "labels": rng.integers(0, self.classes, self.regions).astype(np.int64),
                "features": rng.standard_normal((self.regions, self.features)).astype(np.float16)}


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def ds_config(precision: str, zero: int, micro: int) -> dict:
    config = {"train_micro_batch_size_per_gpu": micro, "gradient_accumulation_steps": 1, "gradient_clipping": 1.0,
              "zero_optimization": {"stage": zero}}
    if precision == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
    elif precision == "bf16":
        config["bf16"] = {"enabled": True}
    return config


def model_config(size: str):
    from vlengine.models import VLConfig
    if size == "tiny":
        return VLConfig.tiny(region_feature_size=2048, vocab_size=30522, num_region_classes=1601,
                             hidden_size=128, num_heads=4, intermediate_size=512, num_layers=4)
    return getattr(VLConfig, size)()


def bench_one(recipe: str, size: str, precision: str, zero: int, micro: int, steps: int, text_len: int,
              regions: int) -> dict:
    from vlengine.data.loading import BatchPlan, ResumableStream, collate_items
    from vlengine.training.config import PretrainConfig
    from vlengine.training.recipes import build_objective
    from vlengine.training.engine import init_distributed
    from vlengine.training.loop import train
    from vlengine.training.settings import TrainSettings

    class Tokenizer:  # bert-base-uncased layout, without needing its vocab file
        vocab_size, mask_id, pad_id = 30522, 103, 0
        special_ids = {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}

    rank, world = init_distributed()
    mcfg = model_config(size)
    cfg = PretrainConfig.from_dict({"recipe": recipe, "masking": {"region_targets": "hard"} if recipe in
                                    ("vlbert", "interbert") else {},
                                    "objective": {"stage_two_step": 0} if recipe == "interbert" else {}})
    objective, mixer = build_objective(cfg, mcfg, Tokenizer())
    data = SyntheticPairs(max(64, micro * world * (steps + 1)), 30522, text_len, regions,
                          mcfg.region_feature_size, mcfg.num_region_classes)
    loader = ResumableStream(data, BatchPlan(len(data), batch_size=micro, rank=rank, world_size=world, seed=0,
                                             drop_last=True), collate_items)
    half = max(1, steps // 2)
    settings = TrainSettings(total_steps=2 * half, warmup_steps=1, lr=1e-4, log_every=half, output_dir=None,
                             progress=False, tensorboard=False)
    result = train(objective, loader, ds_config(precision, zero, micro), settings, mixer)
    m = result.last_metrics   # the second window: steps half+1 .. 2*half
    return {"recipe": recipe, "size": size, "precision": precision, "zero": zero, "world": world,
            "micro_batch": micro, "text_len": text_len, "regions": regions, "steps_measured": half,
            "samples_per_s": round(m["samples_per_s"], 3), "tokens_per_s": round(m["tokens_per_s"], 1),
            "mfu": round(m["mfu"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["vlbert", "interbert", "semvlp", "cssbert"])
    parser.add_argument("--sizes", nargs="+", default=["tiny"], choices=["tiny", "base", "large"])
    parser.add_argument("--precision", default="fp32" if not torch.cuda.is_available() else "bf16",
                        choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--zero", type=int, default=2)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="total steps; the second half is measured")
    parser.add_argument("--text-len", type=int, default=32)
    parser.add_argument("--regions", type=int, default=36)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--record", nargs="?", const=os.path.join(ROOT, "benchmarks", "results"), default=None,
                        metavar="DIR", help="append the rows to DIR/train.csv (default benchmarks/results/)")
    parser.add_argument("--smoke", action="store_true", help="the vlbert recipe, tiny model, 2 steps of 2 rows")
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    args = parser.parse_args()
    if args.smoke:
        args.recipes, args.sizes, args.steps, args.micro_batch = ["vlbert"], ["tiny"], 2, 2

    import torch.distributed as dist
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for recipe in args.recipes:
            row = bench_one(recipe, size, args.precision, args.zero, args.micro_batch, args.steps, args.text_len,
                            args.regions)
            rows.append(row)
    if dist.get_rank() != 0:
        return
    stamp = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "git": git_revision(), "device": device_name()}
    print(f"\n{'recipe':<10} {'size':<6} {'prec':<5} {'ZeRO':>4} {'micro':>5} {'samples/s':>10} {'tokens/s':>10} {'MFU':>8}")
    for row in rows:
        print(f"{row['recipe']:<10} {row['size']:<6} {row['precision']:<5} {row['zero']:>4} {row['micro_batch']:>5} "
              f"{row['samples_per_s']:>10.2f} {row['tokens_per_s']:>10.1f} {100 * row['mfu']:>7.2f}%")
    print(f"device: {stamp['device']}; git {stamp['git']}")
    if args.record:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _common import append_records
        path = append_records(os.path.join(args.record, "train.csv"), [{**row, **stamp} for row in rows])
        print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    from vlengine.training.engine import exit_process, shutdown_distributed
    main()
    shutdown_distributed()
    exit_process(0)
