"""Peak memory per VCR question of one training step (forward + backward), the image encoded once
per question and its RoI features shared by the four sequences, against the front-end run on each
of the four rows (what a four-fold image copy costs).

Each path runs in its own process (CPU: sampled RSS growth, which a previous path's freed-but-cached
pages would otherwise hide; CUDA: the allocator's peak). The peak is what the step adds beyond the
weights and their gradients (a warm-up step made those); the model states a mixed-precision Adam run
holds beside it (fp16 weights and gradients, fp32 master weights and two moments: 16 bytes a
parameter, before ZeRO partitions the last three) are printed from the parameter count. Examples:
    python benchmarks/bench_vcr_memory.py --trunk tiny --questions 4 --image 384x640
    python benchmarks/bench_vcr_memory.py --encoder base --trunk resnet101 --questions 4 --image 600x1000 \
        --regions 100 --text-len 128 --checkpointing --dtype bf16 --paths shared     (VL-BERT base's VCR step)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from _common import device_name, peak_memory   # noqa: E402  (the scripts run from benchmarks/)

from vlengine.batch import VLBatch
from vlengine.models import VLBert, VLConfig
from vlengine.models.visual import resnet_c4_frontend, tiny_c4_frontend
from vlengine.tasks.downstream.vcr_model import NUM_CHOICES, VcrModel


def build(args, height: int, width: int):
    questions, regions, text_len, device = args.questions, args.regions, args.text_len, args.device
    torch.manual_seed(0)
    trunk = args.trunk
    frontend = tiny_c4_frontend(out_features=256) if trunk == "tiny" else resnet_c4_frontend(int(trunk[len("resnet"):]))
    config = getattr(VLConfig, args.encoder)(region_feature_size=256 if trunk == "tiny" else 2048,
                                             gradient_checkpointing=args.checkpointing)
    model = VcrModel(VLBert(config, visual=frontend)).to(device)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, width // 2, (questions, regions, 1), generator=g).float()
    y1 = torch.randint(0, height // 2, (questions, regions, 1), generator=g).float()
    boxes = torch.cat([x1, y1, x1 + width // 3, y1 + height // 3], -1)
    rows = questions * NUM_CHOICES
    batch = VLBatch(input_ids=torch.randint(5, config.vocab_size, (rows, text_len), generator=g),
                    text_mask=torch.ones(rows, text_len, dtype=torch.bool), region_boxes=boxes,
                    region_valid=torch.ones(questions, regions, dtype=torch.bool),
                    image_size=torch.tensor([[float(height), float(width)]] * questions),
                    images=torch.randn(questions, 3, height, width, generator=g))
    return model, batch.to(device)


def one_path(args) -> None:
    h, w = (int(v) for v in args.image.split("x"))
    model, batch = build(args, h, w)
    labels = torch.zeros(args.questions, dtype=torch.long, device=args.device)
    share = args.path == "shared"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]

    def step():
        # gradients kept (not set to None): the warm-up made them, so the peak is the step's activations
        model.zero_grad(set_to_none=False)
        model.train()
        with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
            out = model.logits(batch, share_image=share)
        torch.nn.functional.cross_entropy(out.float(), labels).backward()

    step()   # warm-up: weights' gradients and allocator pools exist before measuring
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"path": args.path, "peak_bytes": peak_memory(step, args.device), "params": params}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--trunk", default="tiny", choices=["tiny", "resnet50", "resnet101"])
    p.add_argument("--encoder", default="tiny", choices=["tiny", "base", "large"], help="VL-BERT encoder size")
    p.add_argument("--checkpointing", action="store_true", help="activation checkpointing in the encoder")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="autocast dtype of the forward (a GPU run's half precision; CPU: bf16)")
    p.add_argument("--paths", default="shared,repeated", help="which paths to measure (comma-separated)")
    p.add_argument("--questions", type=int, default=4, help="questions per micro-batch (x4 sequences)")
    p.add_argument("--image", default="384x640", help="HxW pixels")
    p.add_argument("--regions", type=int, default=16)
    p.add_argument("--text-len", type=int, default=48)
    p.add_argument("--path", choices=["shared", "repeated"], help=argparse.SUPPRESS)   # one path, in a child
    args = p.parse_args(argv)
    if args.path:
        one_path(args)
        return 0
    paths = [p for p in args.paths.split(",") if p]
    if not paths or any(p not in ("shared", "repeated") for p in paths):
        p.error(f"--paths takes shared and/or repeated, got {args.paths!r}")
    peaks, params = {}, 0
    for path in paths:
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--path", path]
        out = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        peaks[path], params = out["peak_bytes"], out["params"]
    print(f"VCR step memory, {args.encoder} encoder, {args.trunk} trunk, {args.questions} questions x {NUM_CHOICES} "
          f"sequences, image {args.image}, {args.regions} regions, text {args.text_len}, {args.dtype}"
          f"{', checkpointing' if args.checkpointing else ''}, device {device_name(args.device)}")
    for path, peak in peaks.items():
        print(f"  {path:9s} peak {peak / 2**20:9.1f} MiB   per question {peak / args.questions / 2**20:8.1f} MiB")
    if len(peaks) == 2 and peaks["repeated"] > 0:   # RSS growth: 0 when the warm-up's pages were reused
        print(f"  shared / repeated = {peaks['shared'] / peaks['repeated']:.3f}")
    print(f"  model states beside it: {params / 1e6:.1f} M parameters x 16 bytes (mixed-precision Adam, unpartitioned) "
          f"= {params * 16 / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
