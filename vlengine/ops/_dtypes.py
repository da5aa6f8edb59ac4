"""Which dtypes each compiled backend takes, and the oldest GPU each runs on: one table for the ops.

``KERNEL_DTYPES[backend][dtype]`` is the minimum CUDA compute capability the
backend's kernels need for that dtype (None: no GPU involved); a dtype absent
from a backend's row is not taken at all (float8, complex). Every compiled op
has this table as its descriptor's ``dtypes``: all of them dispatch float32,
float64, float16 and bfloat16 (half types read and written in their dtype,
accumulated in float32; float64 in float64). An op whose kernels differ gives
its descriptor its own table.

Why these capabilities (checked by compiling, see csrc/ops/cuda and
tests/test_cmake_build.py):
- cuda: the kernels use no instruction newer than sm_70 in any dtype. bfloat16
  is read and written through c10::BFloat16, which converts with integer bit
  operations below sm_80 (nvcc -ptx for sm_75 shows no cvt.*.bf16: that
  instruction appears from sm_80), and every atomic add is on the float32 or
  float64 accumulation buffer, never on bfloat16 (a bfloat16 atomicAdd would
  be a compare-and-swap loop below sm_90: atom.add.noftz.bf16 is sm_90's).
  sm_70 (V100) needs a CUDA 12 build; CUDA 13 builds start at sm_75.
- triton: Triton supports GPUs of compute capability 8.0 and newer, and
  bfloat16 tl.dot needs sm_80's tensor cores; the kernels are written for sm_80+.
- cpu: every dtype, no GPU.
The reference backend (pure PyTorch) takes whatever PyTorch does and is not listed.
"""

from __future__ import annotations

from typing import Mapping

import torch

Capability = tuple[int, int]
DtypeTable = Mapping[str, Mapping[torch.dtype, Capability | None]]

FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
KERNEL_DTYPES: DtypeTable = {
    "cpu": {dtype: None for dtype in FLOATING},
    "cuda": {dtype: (7, 0) for dtype in FLOATING},
    "triton": {dtype: (8, 0) for dtype in FLOATING},
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def arch_name(capability: Capability) -> str:
    return f"sm_{capability[0]}{capability[1]}"


def supported(table: DtypeTable, backend: str, capability: Capability | None) -> list[torch.dtype]:
    """The dtypes ``backend`` takes on a GPU of ``capability`` (None: not on a GPU, no requirement applies)."""
    return [dtype for dtype, needs in table.get(backend, {}).items()
            if needs is None or capability is None or capability >= needs]


def reason_unsupported(table: DtypeTable, backend: str, dtype: torch.dtype | None,
                       capability: Capability | None) -> str | None:
    """None if ``backend`` takes ``dtype`` on a GPU of ``capability``; else why not.

    ``dtype=None`` asks whether the backend takes any dtype there at all.
    ``capability=None`` (a CPU tensor, Triton's interpreter) checks the dtype only.
    """
    if backend not in table:
        return None  # the reference: whatever PyTorch takes
    row = table[backend]
    if dtype is None:
        if supported(table, backend, capability):
            return None
        oldest = min(needs for needs in row.values() if needs is not None)
        return f"the {backend} kernels need {arch_name(oldest)} or newer; this GPU is {arch_name(capability)}"
    if dtype not in row:
        return f"the {backend} kernels do not take {dtype_name(dtype)} (they take " \
               f"{', '.join(dtype_name(d) for d in row)})"
    needs = row[dtype]
    if needs is not None and capability is not None and capability < needs:
        return f"the {backend} kernels need {arch_name(needs)} or newer for {dtype_name(dtype)}; " \
               f"this GPU is {arch_name(capability)}"
    return None


def describe(table: DtypeTable, backend: str) -> str:
    """The table's row for ``backend`` in one line: 'float32 (sm_70+), ...'."""
    row = table.get(backend)
    if row is None:
        return "every dtype PyTorch takes"
    return ", ".join(dtype_name(d) + ("" if needs is None else f" ({arch_name(needs)}+)") for d, needs in row.items())
