"""Which backend runs an op, and why the others cannot.

Every fused op has up to four backends:
    reference  pure PyTorch (vlengine.ops.reference): the oracle and the fallback
    cpu        the C++ kernels of vlengine._C
    cuda       the CUDA kernels of vlengine._C
    triton     the Triton kernels of vlengine.kernels (sm_80+; on the CPU only
               under Triton's interpreter, TRITON_INTERPRET=1, which is how CI tests them)

Ops call ``select(op, device, backend, dtype)`` through their descriptor: an
explicit ``backend=`` wins (and fails loudly if it cannot run); otherwise the
fastest usable one for the device. A backend whose kernels do not take the
input's dtype on this GPU (the descriptor's ``dtypes`` table, ``_dtypes``) is
skipped, and refused with a ValueError when named, before anything launches. When a compiled backend that would have been
preferred cannot be loaded (not built, stale, built against another torch),
the first call that falls back says so once with a warning.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings

import torch

from . import _dtypes, _extension, _registry

BACKENDS = ("reference", "cpu", "cuda", "triton")
# Preference when the caller does not choose. Triton is not picked on the CPU:
# its interpreter is for testing, far slower than the C++ kernels.
_PREFERENCE = {"cpu": ("cpu", "reference"), "cuda": ("cuda", "triton", "reference")}


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=None)
def _triton_import_error() -> str | None:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc}); install the `triton` extra"
    return None


def _op_registered(op: str) -> bool:
    return hasattr(torch.ops.vlengine, op)


def gpu_capability(device: torch.device) -> tuple[int, int] | None:
    """The compute capability of ``device``'s GPU; None for other devices or when no GPU is visible."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))


def reason_dtype_unsupported(backend: str, device: torch.device, op: str | None = None,
                             dtype: torch.dtype | None = None) -> str | None:
    """None if ``backend``'s kernels take ``dtype`` on ``device`` (any dtype when None); else why not."""
    descriptor = _registry.find(op) if op is not None else None
    if descriptor is not None and backend not in descriptor.backends:
        return None  # no such kernels at all: reason_unavailable says so
    table = descriptor.dtypes if descriptor is not None else _dtypes.KERNEL_DTYPES
    capability = gpu_capability(device) if backend != "cpu" else None
    return _dtypes.reason_unsupported(table, backend, dtype, capability)


def reason_unavailable(backend: str, device: torch.device, op: str | None = None,
                       dtype: torch.dtype | None = None) -> str | None:
    """None if ``backend`` can run ``op`` on ``device`` (for inputs of ``dtype``); otherwise a sentence saying why not.

    ``op`` is an op's public name or its library op name (see ``_descriptor``).
    """
    reason = _reason_unavailable(backend, device, op)
    if reason is None and backend != "reference":
        reason = reason_dtype_unsupported(backend, device, op, dtype)
    return reason


def _reason_unavailable(backend: str, device: torch.device, op: str | None) -> str | None:
    if backend not in BACKENDS:
        return f"unknown backend {backend!r}; choose one of {BACKENDS}"
    descriptor = _registry.find(op) if op is not None else None
    if descriptor is not None:
        if backend not in descriptor.backends:
            return f"{descriptor.name} is a pure-PyTorch op: it has no {backend} kernels"
        op = descriptor.library_op
    if backend == "reference":
        return None
    if backend == "triton":
        err = _triton_import_error()
        if err:
            return err
        if device.type == "cpu" and not triton_interpreted():
            return "Triton runs on the CPU only under its interpreter (set TRITON_INTERPRET=1)"
        if device.type not in ("cpu", "cuda"):
            return f"no Triton kernels for {device.type} tensors"
        if op is not None and not _registry.triton_registered(op):
            return _registry.kernel_error(op) or f"no Triton op vlengine::{op}_triton is registered"
        return None
    ext = _extension.load()
    if ext is None:
        return _extension.error()
    if backend == "cpu":
        if device.type != "cpu":
            return f"the CPU kernels take CPU tensors, got {device.type}"
    elif backend == "cuda":
        if device.type != "cuda":
            return f"the CUDA kernels take CUDA tensors, got {device.type}"
        if _extension.load_cuda() is None:
            return _extension.cuda_error()
    if op is not None and not _op_registered(op):
        return f"the compiled extension has no op {op!r} (built from older sources); {_extension.BUILD_HINT}"
    return None


def select(op: str, device: torch.device, backend: str | None = None, dtype: torch.dtype | None = None) -> str:
    """The backend to run ``op`` on tensors of ``device`` (and of ``dtype``, when given)."""
    if backend is not None:
        if backend in BACKENDS and backend != "reference":
            unsupported = reason_dtype_unsupported(backend, device, op, dtype)
            if unsupported:
                raise ValueError(_refusal(op, backend, device, dtype, unsupported))
        reason = reason_unavailable(backend, device, op, dtype)
        if reason:
            raise RuntimeError(f"vlengine.ops.{op}: backend {backend!r} cannot run here: {reason}")
        return backend
    for candidate in _PREFERENCE.get(device.type, ("reference",)):
        reason = reason_unavailable(candidate, device, op, dtype)
        if reason is None:
            return candidate
        failure = load_failure(candidate, device, op)
        if failure is not None:
            _warn_fallback_once(candidate, failure, op)
    return "reference"


def _refusal(op: str, backend: str, device: torch.device, dtype: torch.dtype | None, reason: str) -> str:
    """The ValueError of a named backend that cannot take the input's dtype on this GPU: what to use instead."""
    descriptor = _registry.find(op)
    name = descriptor.name if descriptor is not None else op
    others = descriptor.backends if descriptor is not None else BACKENDS
    usable = [f"backend={b!r}" for b in others if b != backend and reason_unavailable(b, device, op, dtype) is None]
    instead = " or ".join(usable + ["backend=None (the fastest that can)"])
    capability = gpu_capability(device) if backend != "cpu" else None
    table = descriptor.dtypes if descriptor is not None else _dtypes.KERNEL_DTYPES
    convertible = [_dtypes.dtype_name(d) for d in _dtypes.supported(table, backend, capability) if d != dtype]
    if convertible:
        instead += f", or inputs of {' / '.join(convertible)}"
    what = _dtypes.dtype_name(dtype) if dtype is not None else "its inputs"
    return f"vlengine.ops.{name}: backend {backend!r} cannot run {what} here: {reason}. Use {instead}."


def load_failure(backend: str, device: torch.device, op: str | None = None) -> str | None:
    """Why a compiled backend that should run on ``device`` could not be loaded, else None.

    Not a load failure: a backend for another device, the CUDA extension on a
    machine without a GPU, or a pure-PyTorch op. A load failure: the extension
    is missing or does not import (stale build, another torch), or it lacks the
    op (built from older sources).
    """
    if backend not in ("cpu", "cuda") or device.type != backend:
        return None
    descriptor = _registry.find(op) if op is not None else None
    if descriptor is not None and not descriptor.compiled:
        return None
    if _extension.load() is None:
        return _extension.error()
    if backend == "cuda" and _extension.load_cuda() is None:
        return _extension.cuda_error()
    library_op = descriptor.library_op if descriptor is not None else op
    if library_op is not None and not _op_registered(library_op):
        return f"the compiled extension has no op {library_op!r} (built from older sources); " \
               f"{_extension.BUILD_HINT}"
    return None


_warned: set[str] = set()


def _warn_fallback_once(backend: str, failure: str, op: str | None) -> None:
    if backend in _warned:
        return
    _warned.add(backend)
    # Point the warning at the caller's line: the first frame outside vlengine.ops.
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("vlengine.ops"):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"vlengine.ops: the compiled {backend!r} backend cannot be loaded, so {op or 'the op'} and "
                  f"every other op fall back to a slower backend: {failure}. "
                  "`python -m vlengine.info` shows every backend's state.", RuntimeWarning, stacklevel=level)


def not_supported_reasons(device: torch.device | str = "cpu", op: str | None = None,
                          dtype: torch.dtype | None = None) -> dict[str, str | None]:
    """For each backend, None if usable on ``device`` (for inputs of ``dtype``), else why not."""
    device = torch.device(device)
    return {b: reason_unavailable(b, device, op, dtype) for b in BACKENDS}
