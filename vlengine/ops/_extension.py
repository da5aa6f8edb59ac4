"""Loads the compiled extensions, remembering why when they cannot be loaded.

vlengine._C holds the op schemas and the CPU kernels; vlengine._C_cuda the
CUDA kernels. _C_cuda is imported only where torch sees a GPU: on a GPU-less
machine there is nothing for it to run, and loading the CUDA runtime it links
made multi-process (gloo) jobs abort at exit now and then.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch

_BUILD_HINT = "build it with `pip install --no-build-isolation -e .`"
_module = None
_error: str | None = None
_cuda_module = None
_cuda_error: str | None = None


def load():
    """The vlengine._C module (its import registers the ops and CPU kernels), or None."""
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = importlib.import_module("vlengine._C")
        except ImportError as exc:  # not built, or built against another torch
            _error = f"vlengine._C could not be imported ({exc}); {_BUILD_HINT}"
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
                _cuda_module = importlib.import_module("vlengine._C_cuda")
            except ImportError as exc:
                _cuda_error = f"vlengine._C_cuda could not be imported ({exc}); {_BUILD_HINT}"
    return _cuda_module


def cuda_error() -> str | None:
    load_cuda()
    return _cuda_error
