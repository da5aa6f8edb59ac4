"""``python -m vlengine.info``: what was found, what was built, what can run, and why not.

Like DeepSpeed's ds_report: versions of the stack, the compiled extension and
how it was built, the CUDA toolkit a rebuild would use, and for each backend
of each op whether it can run on this machine's devices, with the reason when
it cannot.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import platform
import sys

# Each op's name as its module passes it to _backend.select (the compiled op it needs).


def _version(distribution: str) -> str:
    """The installed version, read from package metadata (importing deepspeed or
    transformers just to read it would be slow and noisy)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _op_names() -> list[str]:
    import vlengine.ops as ops_pkg

    names = []
    for module in sorted(pkgutil.iter_modules(ops_pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"vlengine.ops.{module.name}")
        if isinstance(getattr(mod, "_OP", None), str):
            names.append(mod._OP)
    return names


def report() -> str:
    import torch

    from . import __version__, _toolkit
    from .ops import _backend, _extension

    lines = ["vlengine environment report", "=" * 27]
    lines.append(f"python          {sys.version.split()[0]} ({platform.machine()}, {platform.system()})")
    lines.append(f"vlengine        {__version__}")
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
    if ext is None:
        lines.append(f"vlengine._C     NOT BUILT: {_extension.error()}")
    else:
        lines.append(f"vlengine._C     built (CPU kernels, OpenMP {'on' if ext.built_with_openmp() else 'off'})")
    cuda_ext = _extension.load_cuda()
    if cuda_ext is not None:
        v = cuda_ext.cuda_version()
        lines.append(f"vlengine._C_cuda loaded (CUDA {v // 1000}.{v % 1000 // 10} kernels)")
    else:
        lines.append(f"vlengine._C_cuda {'built' if _extension.cuda_built() else 'not built'}: {_extension.cuda_error()}")

    import vlengine.ops  # noqa: F401 - registers every op, Triton ones included, before we look

    devices = ["cpu"] + (["cuda"] if gpus else [])
    lines.append("")
    lines.append("backends (ok = usable; otherwise why not)")
    for device in devices:
        lines.append(f"  on {device}:")
        for op in _op_names():
            reasons = _backend.not_supported_reasons(device, op)
            chosen = _backend.select(op, torch.device(device)) if any(r is None for r in reasons.values()) else "-"
            lines.append(f"    {op:<24} default={chosen}")
            for backend, reason in reasons.items():
                lines.append(f"      {backend:<10} {'ok' if reason is None else 'no: ' + reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
