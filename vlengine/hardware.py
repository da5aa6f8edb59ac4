"""Peak FLOP/s and memory bandwidth of the device a measurement ran on: the denominators of MFU and roofline.

GPUs: the vendors' datasheet figures, *dense* (NVIDIA quotes tensor-core rates
"with sparsity" on Ampere and Hopper datasheets; the dense rate is half of it),
matched by ``torch.cuda.get_device_name()``. Sources:
  V100  NVIDIA Tesla V100 datasheet (volta-v100-datasheet-update-us-1165301-r5, Jan 2020):
        SXM2 15.7 FP32 / 125 tensor (FP16) TFLOPS, PCIe 14 / 112; 900 GB/s HBM2 (16 and 32 GB).
        No TF32 and no BF16 (sm_70).
  A100  NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4, 2021):
        19.5 FP32, 156 TF32, 312 BF16 / FP16 tensor TFLOPS (dense); 40 GB 1,555 GB/s,
        80 GB SXM 2,039 GB/s, 80 GB PCIe 1,935 GB/s.
  H100  NVIDIA H100 Tensor Core GPU datasheet (h100-datasheet-2287922, 2023):
        SXM 67 FP32, 989 TF32*, 1,979 BF16 / FP16* TFLOPS, 3.35 TB/s;
        PCIe 51 FP32, 756 TF32*, 1,513 BF16 / FP16* TFLOPS, 2 TB/s  (* with sparsity: halved here).
  H200  NVIDIA H200 Tensor Core GPU datasheet (2024): compute as H100 SXM, 4.8 TB/s HBM3e.

CPUs have no honest published peak for this process (turbo, SMT, other jobs on
the machine), so the peak is *measured* once per process and cached: the best
of a few fp32 matmuls (FLOP/s) and of a few large tensor copies (bytes read +
written per second). "Fraction of peak" on a CPU therefore means "fraction of
what torch.matmul / a copy reach here, now"; on a shared machine the figures
move with the load, which is why the probe is printed beside the results.

Nothing here imports the rest of vlengine: training (MFU) and benchmarks (roofline) both use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

DTYPES = ("fp32", "tf32", "fp16", "bf16")


@dataclass(frozen=True)
class DevicePeaks:
    """Dense peak TFLOP/s per dtype and memory bandwidth (GB/s, 1e9 bytes) of one device."""

    name: str
    tflops: dict = field(default_factory=dict)  # "fp32" / "tf32" / "fp16" / "bf16" -> dense TFLOP/s
    bandwidth_gbs: float = float("nan")
    source: str = ""

    def flops_per_s(self, dtype: str | torch.dtype = "fp32") -> float:
        """Peak FLOP/s for ``dtype`` (NaN where the device has no such unit, e.g. bf16 on a V100)."""
        return self.tflops.get(dtype_key(dtype), float("nan")) * 1e12

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9

    @property
    def half_precision_flops_per_s(self) -> float:
        """The fp16/bf16 tensor peak (whichever is higher): the MFU denominator of mixed-precision training."""
        rates = [self.tflops[k] for k in ("bf16", "fp16") if k in self.tflops]
        return max(rates) * 1e12 if rates else float("nan")


def dtype_key(dtype: str | torch.dtype) -> str:
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        return dtype
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


_V100 = {"fp32": 15.7, "fp16": 125.0}
_V100_PCIE = {"fp32": 14.0, "fp16": 112.0}
_A100 = {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}
_H100_SXM = {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5}
_H100_PCIE = {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5}

# (substrings that must all appear in the device name, peaks, bandwidth GB/s, label); first match wins,
# so the more specific names come first. Example names: "Tesla V100-SXM2-32GB", "NVIDIA A100-SXM4-80GB",
# "NVIDIA A100 80GB PCIe", "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA H200".
GPU_TABLE = (
    (("H200",), _H100_SXM, 4800.0, "H200 SXM"),
    (("H100", "PCIe"), _H100_PCIE, 2000.0, "H100 PCIe"),
    (("H100",), _H100_SXM, 3350.0, "H100 SXM"),
    (("A100", "80GB", "PCIe"), _A100, 1935.0, "A100 80GB PCIe"),
    (("A100", "80GB"), _A100, 2039.0, "A100 80GB SXM"),
    (("A100",), _A100, 1555.0, "A100 40GB"),
    (("V100", "PCIE"), _V100_PCIE, 900.0, "V100 PCIe"),
    (("V100",), _V100, 900.0, "V100 SXM2"),
)


def gpu_peaks(name: str) -> DevicePeaks | None:
    """The datasheet peaks of the GPU called ``name`` (case-insensitive match), or None if not in the table."""
    upper = name.upper()
    for keys, tflops, bandwidth, label in GPU_TABLE:
        if all(k.upper() in upper for k in keys):
            return DevicePeaks(name, dict(tflops), bandwidth, f"{label} datasheet (dense)")
    return None


_cpu_cache: dict[tuple[int, int], DevicePeaks] = {}


_matmul_cache: dict[int, float] = {}


def measured_cpu_matmul_flops(size: int = 1024, repeats: int = 5) -> float:
    """Best fp32 matmul FLOP/s of this process on the CPU, measured once per size and cached.

    A private generator: probing must not advance the global RNG (exact resume depends on it)."""
    if size in _matmul_cache:
        return _matmul_cache[size]
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    torch.matmul(a, b)  # warm-up: thread pool and allocator
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    _matmul_cache[size] = 2.0 * size**3 / best
    return _matmul_cache[size]


def measured_cpu_copy_bandwidth(megabytes: int = 64, repeats: int = 5) -> float:
    """Best bytes/s (read + written) of a tensor copy larger than the caches."""
    src = torch.ones(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of dst's pages is not a copy rate
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2.0 * src.numel() * src.element_size() / best


def cpu_peaks(matmul_size: int = 1024, copy_megabytes: int = 64) -> DevicePeaks:
    """Measured once per process (cached): fp32 matmul rate for every dtype, copy bandwidth."""
    key = (matmul_size, copy_megabytes)
    if key not in _cpu_cache:
        flops = measured_cpu_matmul_flops(matmul_size) / 1e12
        bandwidth = measured_cpu_copy_bandwidth(copy_megabytes) / 1e9
        _cpu_cache[key] = DevicePeaks(
            f"CPU ({torch.get_num_threads()} threads)", {k: flops for k in DTYPES}, bandwidth,
            f"measured at start: fp32 matmul {matmul_size}^3, copy {copy_megabytes} MiB")
    return _cpu_cache[key]


def device_peaks(device: str | torch.device = "cpu") -> DevicePeaks:
    """Peaks of ``device``: the GPU's datasheet row (NaN peaks for a GPU not in the table), or the CPU measured."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return gpu_peaks(name) or DevicePeaks(name, {}, float("nan"), f"unknown GPU {name!r}: not in GPU_TABLE")
    return cpu_peaks()
