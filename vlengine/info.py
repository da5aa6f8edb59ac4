"""``python -m vlengine.info``: what was found, what was built, what can run, and why not.

Like DeepSpeed's ds_report: versions of the stack, the compiled extension and
how it was built, the CUDA toolkit a rebuild would use, and for each backend
of each op whether it can run on this machine's devices, with the reason when
it cannot. The ops are listed from the registry of op descriptors
(``vlengine.ops._registry``), so a new op appears here by having a descriptor.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import warnings


def _version(distribution: str) -> str:
    """The installed version, read from package metadata (importing deepspeed or
    transformers just to read it would be slow and noisy)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> str:
    import torch

    from . import __version__, _toolkit
    from .ops import _backend, _extension, _registry

    lines = ["vlengine environment report", "=" * 27]
    lines.append(f"python          {sys.version.split()[0]} ({platform.machine()}, {platform.system()})")
    lines.append(f"vlengine        {__version__} (imported from {os.path.dirname(os.path.abspath(__file__))})")
    lines.append(f"torch           {torch.__version__} (CUDA {torch.version.cuda or 'none'}, "
                 f"{torch.get_num_threads()} CPU threads)")
    for name in ("triton", "deepspeed", "numpy", "torchvision", "transformers", "tokenizers", "safetensors"):
        lines.append(f"{name:<15} {_version(name)}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        for i in range(gpus):
            cap = torch.cuda.get_device_capability(i)
            lines.append(f"gpu {i}           {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]})")
    else:
        lines.append("gpu             none visible to torch")

    toolkit = _toolkit.find_toolkit()
    if toolkit:
        lines.append(f"cuda toolkit    {toolkit.version_str} at {toolkit.home} "
                     f"(a rebuild targets {';'.join(_toolkit.arch_list(toolkit))})")
    else:
        lines.append("cuda toolkit    none found (a rebuild makes the CPU extension only)")

    ext = _extension.load()
    shadowed = _extension.shadowed_build()
    if shadowed is not None:
        lines.append(f"source checkout {shadowed[0]} has no compiled extension and is imported ahead of the "
                     f"installed build {shadowed[1]}")
    if ext is None:
        lines.append(f"vlengine._C     NOT LOADED: {_extension.error()}")
        lines.append("                the ops fall back to their pure-PyTorch references (slower); the first "
                     "call warns once")
    else:
        lines.append(f"vlengine._C     built (CPU kernels, OpenMP {'on' if ext.built_with_openmp() else 'off'})")
    cuda_ext = _extension.load_cuda()
    if cuda_ext is not None:
        v = cuda_ext.cuda_version()
        lines.append(f"vlengine._C_cuda loaded (CUDA {v // 1000}.{v % 1000 // 10} kernels)")
    else:
        lines.append(f"vlengine._C_cuda {'built' if _extension.cuda_built() else 'not built'}: {_extension.cuda_error()}")

    descriptors = _registry.descriptors()  # imports vlengine.ops: every op registered, Triton ones included
    compiled = [d for d in descriptors if d.compiled]
    devices = ["cpu"] + (["cuda"] if gpus else [])
    lines.append("")
    lines.append("backends (ok = usable; otherwise why not)")
    for device in devices:
        lines.append(f"  on {device}:")
        for d in compiled:
            reasons = _backend.not_supported_reasons(device, d.name)
            with warnings.catch_warnings():  # the fallback is reported above, not warned here
                warnings.simplefilter("ignore")
                chosen = d.select(torch.device(device))
            lines.append(f"    {d.name:<26} default={chosen}  (vlengine::{d.library_op})")
            for backend, reason in reasons.items():
                lines.append(f"      {backend:<10} {'ok' if reason is None else 'no: ' + reason}")
    lines += _dtype_lines(compiled, gpus)
    lines.append("")
    lines.append("pure-PyTorch ops (no compiled backends; they run anywhere torch does)")
    for d in descriptors:
        if not d.compiled:
            lines.append(f"    {d.name:<26} {d.summary}")
    return "\n".join(lines)


def _dtype_lines(compiled, gpus: int) -> list[str]:
    """Per op and compiled backend, the dtypes it takes on each visible GPU, or the table's requirements."""
    import torch

    from .ops import _dtypes

    lines = [""]
    if gpus:
        targets = [(f"gpu {i} ({_dtypes.arch_name(tuple(torch.cuda.get_device_capability(i)))})",
                    tuple(torch.cuda.get_device_capability(i))) for i in range(gpus)]
        lines.append("dtypes each backend takes on the visible GPU")
    else:
        targets = [("no GPU visible; what each backend needs", None)]
        lines.append("dtypes each backend takes (sm_XY+: the oldest GPU architecture that dtype needs)")
    for title, capability in targets:
        lines.append(f"  {title}:")
        for d in compiled:
            for i, backend in enumerate(b for b in d.backends if b != "reference"):
                if capability is None:
                    taken = _dtypes.describe(d.dtypes, backend)
                else:
                    names = [_dtypes.dtype_name(t) for t in _dtypes.supported(d.dtypes, backend, capability)]
                    taken = ", ".join(names) or "none: " + _dtypes.reason_unsupported(d.dtypes, backend, None,
                                                                                     capability)
                lines.append(f"    {d.name if i == 0 else '':<26} {backend:<7} {taken}")
    return lines


def main(argv: list[str] | None = None) -> int:
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
