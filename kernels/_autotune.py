"""Autotuning of the Triton kernels: configurations per GPU generation and a fixed key.

Every tuned kernel declares one ``Tuning``: candidate configurations for
sm_80 (A100; also taken by sm_86/sm_89) and for sm_90 (H100; also taken by
newer GPUs), the names of the kernel arguments that key the autotuner's cache,
the outputs to zero before each timed run (kernels that accumulate), and the
single configuration run under Triton's CPU interpreter.

The key. ``triton.autotune`` benchmarks every candidate once per distinct key
value (the key always includes the tensors' dtypes too). Keyed on raw sizes,
the cache would grow, and the kernel be re-benchmarked, with every new batch
size or RoI count. So each tuned kernel takes extra integer arguments
``key_<size>`` that it never reads: the sizes that change the best
configuration, rounded up to a power of two by ``size_bucket``. They are
marked do_not_specialize, so their values do not multiply the compiled
variants.

The interpreter. Triton's Autotuner benchmarks every candidate whenever it has
more than one (under TRITON_INTERPRET=1 as well, each run a slow pass of numpy),
so there it gets exactly one configuration: the Autotuner then runs it
without timing anything, and the tests stay as fast as before tuning.

The candidates are unmeasured defaults, chosen from each kernel's structure
(memory-bound kernels: block size and warps; tl.dot kernels: tile shape,
warps and pipeline stages); measure them when a GPU is lent
(benchmarks/README.md, "GPU tuning").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton

ARCHITECTURES = ("sm_80", "sm_90")


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def size_bucket(size: int) -> int:
    """``size`` rounded up to a power of two (at least 1): the autotuning key of a problem size."""
    return triton.next_power_of_2(max(int(size), 1))


def architecture(capability: tuple[int, int]) -> str:
    """Which candidate list serves a GPU of compute capability ``capability``."""
    return "sm_90" if capability >= (9, 0) else "sm_80"


@dataclass(frozen=True)
class Tuning:
    """How one kernel is tuned: see the module docstring."""

    sm_80: tuple[triton.Config, ...]
    sm_90: tuple[triton.Config, ...]
    key: tuple[str, ...]
    interpreter: triton.Config
    reset_to_zero: tuple[str, ...] = ()

    def configs(self, arch: str) -> tuple[triton.Config, ...]:
        return {"sm_80": self.sm_80, "sm_90": self.sm_90}[arch]


class TunedKernel:
    """A @triton.jit kernel and its Tuning; ``for_device(device)`` is the autotuned kernel to launch there.

    One Autotuner per architecture, built on first use: the candidates are chosen
    from the launching tensors' GPU at run time, not at import (which would
    initialise CUDA in every process that imports vlengine.ops).
    """

    def __init__(self, fn, tuning: Tuning):
        missing = [name for name in tuning.key + tuning.reset_to_zero if name not in fn.arg_names]
        if missing:
            raise ValueError(f"{fn.__name__}: tuning names arguments it does not have: {missing}")
        self.fn = fn
        self.tuning = tuning
        self._autotuners: dict[str, object] = {}

    def for_device(self, device: torch.device):
        if interpreted() or device.type != "cuda":
            return self._autotuner("interpreter")
        return self._autotuner(architecture(torch.cuda.get_device_capability(device)))

    def _autotuner(self, arch: str):
        if arch not in self._autotuners:
            configs = [self.tuning.interpreter] if arch == "interpreter" else list(self.tuning.configs(arch))
            self._autotuners[arch] = triton.autotune(configs=configs, key=list(self.tuning.key),
                                                     reset_to_zero=list(self.tuning.reset_to_zero) or None)(self.fn)
        return self._autotuners[arch]


def tuned(tuning: Tuning):
    """Decorator for a @triton.jit kernel: ``TunedKernel(kernel, tuning)``."""
    return lambda fn: TunedKernel(fn, tuning)
