"""Benchmark: vlengine.ops.fused_linear_cross_entropy (chunked) against the materialised linear + CE.

The MLM head's loss: M masked rows of width H against a vocabulary of V words
(BERT's 30522 by default). Providers:
    materialised  logits = hidden @ weight.T + bias, then F.cross_entropy (M x V logits in memory);
                  this is also vlengine.ops.reference.linear_cross_entropy
    chunked       vlengine.ops.fused_linear_cross_entropy: chunk_size x V logits at a time,
                  gradients made in the forward pass (a pure-PyTorch op: no per-backend kernels)
Forward + backward time (median, p20-p80) and peak memory beyond the inputs.

    python benchmarks/bench_linear_cross_entropy.py [--device cpu|cuda] [--rows 512,4096] [--vocab 30522]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import append_csv, apply_threads, measure, print_table, quiet_and_busy  # noqa: E402

import vlengine.ops as ops  # noqa: E402
from vlengine.ops.reference import linear_cross_entropy  # noqa: E402


def bench(device: str, rows: list[int], hidden: int, vocab: int, dtype: torch.dtype, chunk: int,
          repeats: int) -> list:
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(vocab, hidden, generator=gen) / hidden ** 0.5).to(device, dtype).requires_grad_()
    bias = torch.zeros(vocab, device=device, dtype=dtype, requires_grad=True)
    results = []
    for m in rows:
        h = torch.randn(m, hidden, generator=gen).to(device, dtype).requires_grad_()
        labels = torch.randint(0, vocab, (m,), generator=gen).to(device)
        providers = {
            "materialised": lambda: linear_cross_entropy(h, weight, bias, labels),
            "chunked": lambda: ops.fused_linear_cross_entropy(h, weight, bias, labels, chunk_size=chunk),
        }
        want = providers["materialised"]().float()
        case = f"M={m} H={hidden} V={vocab}"
        for provider, loss_fn in providers.items():
            got = loss_fn().float()
            note = "" if torch.allclose(got, want, rtol=1e-2, atol=1e-3) else "MISMATCH vs materialised"

            def step(loss_fn=loss_fn):
                h.grad = weight.grad = bias.grad = None
                loss_fn().backward()

            results.append(measure("linear_cross_entropy", case, provider, "fwd+bwd", step, device,
                                   repeats=repeats, note=note))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", default="512,4096", help="comma-separated M (masked rows)")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--chunk", type=int, default=1024, help="chunk_size of the chunked op")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--busy", action="store_true",
                        help="measure twice: quiet, then beside a competing 2-thread PyTorch matmul process")
    args = parser.parse_args(argv)
    apply_threads(args)
    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} dtype={args.dtype}")
    rows = quiet_and_busy(lambda: bench(args.device, [int(s) for s in args.rows.split(",")], args.hidden, args.vocab,
                                        getattr(torch, args.dtype), args.chunk, args.repeats), args.busy)
    print_table(rows, baseline="materialised")
    print(f"\nCSV: {append_csv('linear_cross_entropy', rows, args.device)}")


if __name__ == "__main__":
    main()
