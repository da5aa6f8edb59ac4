"""Loads the compiled extensions, remembering why when they cannot be loaded.

vlengine._C holds the op schemas and the CPU kernels; vlengine._C_cuda the
CUDA kernels. _C_cuda is imported only where torch sees a GPU: on a GPU-less
machine there is nothing for it to run, and loading the CUDA runtime it links
made multi-process (gloo) jobs abort at exit now and then.

When vlengine._C cannot be imported, the reason says how to fix it, and notes
the usual trap: vlengine imported from a source checkout that was never built
(a directory with no _C*.so) that sits on sys.path ahead of an installed build.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

import torch

BUILD_HINT = "build it with `pip install --no-build-isolation -e .`"
_EXTENSION_GLOBS = ("_C.*.so", "_C.so", "_C.*.pyd", "_C.pyd")
_module = None
_error: str | None = None
_cuda_module = None
_cuda_error: str | None = None


def load():
    """The vlengine._C module (its import registers the ops and CPU kernels), or None."""
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = _import("vlengine._C")
        except ImportError as exc:  # not built, or built against another torch
            _error = f"vlengine._C could not be imported ({exc}); {_fix_hint()}"
        else:
            load_cuda()  # registers the CUDA kernels too, where a GPU is visible
    return _module


def error() -> str | None:
    load()
    return _error


def cuda_built() -> bool:
    return importlib.util.find_spec("vlengine._C_cuda") is not None


def load_cuda():
    """vlengine._C_cuda (registers the CUDA kernels) when built and a GPU is visible, else None."""
    global _cuda_module, _cuda_error
    if _cuda_module is None and _cuda_error is None:
        if load() is None:
            _cuda_error = _error
        elif not cuda_built():
            _cuda_error = ("vlengine._C_cuda was not built (no CUDA toolkit or a CPU torch at build time, "
                           "or VLENGINE_NO_CUDA=1)")
        elif not torch.cuda.is_available():
            _cuda_error = "built, not loaded: no GPU is visible to torch"
        else:
            try:
                _cuda_module = _import("vlengine._C_cuda")
            except ImportError as exc:
                _cuda_error = f"vlengine._C_cuda could not be imported ({exc}); {BUILD_HINT}"
    return _cuda_module


def cuda_error() -> str | None:
    load_cuda()
    return _cuda_error


def _import(name: str):
    """importlib.import_module; one seam for the tests that simulate a missing build."""
    return importlib.import_module(name)


def _fix_hint() -> str:
    shadowed = shadowed_build()
    if shadowed is None:
        return BUILD_HINT
    source, build = shadowed
    return (f"vlengine is imported from {source}, a source checkout with no compiled extension, ahead of the "
            f"installed build {build}: build the checkout in place (`pip install --no-build-isolation -e .`) "
            "or run from outside it")


def _has_extension(package_dir: Path) -> bool:
    return any(any(package_dir.glob(pattern)) for pattern in _EXTENSION_GLOBS)


def _installed_extensions(search_path: list[str]) -> list[Path]:
    """Compiled vlengine._C files on ``search_path`` and in the installed distribution's record."""
    found = []
    for entry in search_path:
        package_dir = Path(entry or os.getcwd()) / "vlengine"
        if package_dir.is_dir():
            found += [p for pattern in _EXTENSION_GLOBS for p in sorted(package_dir.glob(pattern))]
    try:
        dist = importlib.metadata.distribution("vlengine")
    except importlib.metadata.PackageNotFoundError:
        return found
    for record in dist.files or ():
        if record.parts[:1] == ("vlengine",) and record.name.startswith("_C") and record.name.endswith((".so", ".pyd")):
            path = Path(dist.locate_file(record))
            if path.exists():
                found.append(path)
    return found


def shadowed_build(package_dir: Path | str | None = None,
                   search_path: list[str] | None = None) -> tuple[str, str] | None:
    """(imported package dir, an installed _C) when vlengine is imported from a directory with no
    compiled extension while a built one exists elsewhere; None otherwise."""
    if package_dir is None:
        import vlengine

        package_dir = Path(vlengine.__file__).parent
    package_dir = Path(package_dir).resolve()
    if _has_extension(package_dir):
        return None
    for path in _installed_extensions(sys.path if search_path is None else search_path):
        if path.resolve().parent != package_dir:
            return str(package_dir), str(path)
    return None
