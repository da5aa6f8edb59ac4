"""Samples/s, tokens/s and model FLOPs utilisation (MFU).

MFU = model FLOPs actually done per second / peak FLOPs of the hardware.
Model FLOPs are counted as the module says (`flops_per_batch`) or, failing
that, 6 x trainable non-embedding parameters x tokens (forward + backward of every weight
once per token, the nanoGPT / PaLM convention; recomputation is not counted).

Peaks for GPUs are the vendors' dense fp16/bf16 tensor-core figures (the table in
`vlengine.hardware`, shared with the benchmarks' roofline columns). On a CPU
there is no honest published peak, so the peak is *measured*: the best fp32
matmul throughput of this process on this machine (a short probe, cached), and
MFU there means "fraction of what torch.matmul reaches here".
"""

from __future__ import annotations

import time

import torch

from ..hardware import device_peaks, measured_cpu_matmul_flops  # noqa: F401  (re-exported)


def peak_flops(device: torch.device, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s per rank, where the number comes from): the device table of `vlengine.hardware`."""
    if override_tflops:
        return override_tflops * 1e12, "config peak_tflops"
    if device.type == "cuda":
        peaks = device_peaks(device)
        peak = peaks.half_precision_flops_per_s
        if peak != peak:
            return peak, f"{peaks.source}: set peak_tflops"
        return peak, f"{peaks.source}, fp16/bf16 tensor"
    return measured_cpu_matmul_flops(), "measured fp32 matmul on this CPU"


def trainable_parameters(module: torch.nn.Module, exclude_embeddings: bool = False) -> int:
    """Trainable parameters, counting tied weights once. Under ZeRO-3 a parameter's local tensor
    is an empty shard, so DeepSpeed's recorded full size (`ds_numel`) is used when present.

    exclude_embeddings: leave out nn.Embedding tables (a lookup costs no FLOPs: the 6N of
    MFU counts non-embedding parameters, as PaLM / nanoGPT do).
    """
    seen = set()
    if exclude_embeddings:
        for sub in module.modules():
            if isinstance(sub, torch.nn.Embedding):
                seen.update(id(p) for p in sub.parameters())
    total = 0
    for p in module.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        total += getattr(p, "ds_numel", p.numel())
    return total


def model_flops(module: torch.nn.Module, batch, tokens: int, n_params: int) -> float:
    """FLOPs of one forward + backward on `batch`."""
    per_sample = getattr(module, "flops_per_batch", None)
    if callable(per_sample):
        return float(per_sample(batch))
    return 6.0 * n_params * tokens


class ThroughputMeter:
    """Accumulates samples, tokens and FLOPs between two reports."""

    def __init__(self, world_size: int, peak_flops_per_rank: float):
        self.world_size = world_size
        self.peak = peak_flops_per_rank
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self.tokens = 0
        self.flops = 0.0
        self.start = time.perf_counter()

    def add(self, samples: int, tokens: int, flops: float) -> None:
        """Per-rank counts; multiplied by world size on report (ranks see equal batches)."""
        self.samples += samples
        self.tokens += tokens
        self.flops += flops

    def report(self) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        achieved = self.flops / elapsed  # per rank
        out = {
            "samples_per_s": self.samples * self.world_size / elapsed,
            "tokens_per_s": self.tokens * self.world_size / elapsed,
            "mfu": achieved / self.peak if self.peak == self.peak and self.peak > 0 else float("nan"),
        }
        self.reset()
        return out
