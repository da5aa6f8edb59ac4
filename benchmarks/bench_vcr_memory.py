"""Peak memory per VCR question of one training step (forward + backward), the image encoded once
per question and its RoI features shared by the four sequences, against the front-end run on each
of the four rows (what a four-fold image copy costs).

Each path runs in its own process (CPU: sampled RSS growth, which a previous path's freed-but-cached
pages would otherwise hide; CUDA: the allocator's peak). Example:
    python benchmarks/bench_vcr_memory.py --trunk tiny --questions 4 --image 384x640
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


def build(trunk: str, questions: int, height: int, width: int, regions: int, text_len: int, device: str):
    torch.manual_seed(0)
    frontend = tiny_c4_frontend(out_features=256) if trunk == "tiny" else resnet_c4_frontend(50)
    config = VLConfig.tiny(region_feature_size=256 if trunk == "tiny" else 2048)
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
    model, batch = build(args.trunk, args.questions, h, w, args.regions, args.text_len, args.device)
    labels = torch.zeros(args.questions, dtype=torch.long, device=args.device)
    share = args.path == "shared"

    def step():
        model.zero_grad(set_to_none=True)
        model.train()
        out = model.logits(batch, share_image=share)
        torch.nn.functional.cross_entropy(out, labels).backward()

    step()   # warm-up: weights' gradients and allocator pools exist before measuring
    print(json.dumps({"path": args.path, "peak_bytes": peak_memory(step, args.device)}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--trunk", default="tiny", choices=["tiny", "resnet50"])
    p.add_argument("--questions", type=int, default=4, help="questions per micro-batch (x4 sequences)")
    p.add_argument("--image", default="384x640", help="HxW pixels")
    p.add_argument("--regions", type=int, default=16)
    p.add_argument("--text-len", type=int, default=48)
    p.add_argument("--path", choices=["shared", "repeated"], help=argparse.SUPPRESS)   # one path, in a child
    args = p.parse_args(argv)
    if args.path:
        one_path(args)
        return 0
    peaks = {}
    for path in ("shared", "repeated"):
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--path", path]
        out = subprocess.run(child, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        peaks[path] = json.loads(out)["peak_bytes"]
    print(f"VCR step memory, {args.trunk} trunk, {args.questions} questions x {NUM_CHOICES} sequences, image {args.image}, "
          f"{args.regions} regions, text {args.text_len}, device {device_name(args.device)}")
    for path, peak in peaks.items():
        print(f"  {path:9s} peak {peak / 2**20:9.1f} MiB   per question {peak / args.questions / 2**20:8.1f} MiB")
    print(f"  shared / repeated = {peaks['shared'] / peaks['repeated']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
