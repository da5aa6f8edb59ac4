"""The registry of op descriptors: registering one wires its torch.library ops once.

``register(descriptor)`` loads the compiled extension (whose import declares the
C++ schemas), imports the op's Triton kernel module (whose import declares the
``_triton`` ops), and then registers the fake kernel and the autograd of every
op of the family that exists, for the C++ and the Triton version alike. Either
import order of ``vlengine.kernels.<op>`` and ``vlengine.ops`` ends with the same
registrations: the kernel modules import nothing from ``vlengine.ops``.
"""

from __future__ import annotations

import functools
import importlib

from . import _extension
from ._descriptor import COMPILED_BACKENDS, BackendOps, OpDescriptor, backend_suffix, suffixed
from ._registration import has_op, register_autograd_once, register_fake_once

_DESCRIPTORS: dict[str, OpDescriptor] = {}
_KERNEL_ERRORS: dict[str, str] = {}  # library op -> why its Triton kernel module did not import


def register(descriptor: OpDescriptor) -> OpDescriptor:
    """Add ``descriptor`` to the registry and register its library ops' fakes and autograd."""
    _DESCRIPTORS[descriptor.name] = descriptor
    if descriptor.compiled:
        _extension.load()
        _import_kernels(descriptor)
        for suffix in dict.fromkeys(backend_suffix(b) for b in COMPILED_BACKENDS):
            _register_family(descriptor, suffix)
    return descriptor


def _import_kernels(descriptor: OpDescriptor) -> None:
    if descriptor.kernel_module is None:
        return
    try:
        importlib.import_module(descriptor.kernel_module)
    except ImportError as exc:  # triton missing, or a Triton too old for the kernels
        _KERNEL_ERRORS[descriptor.library_op] = f"{descriptor.kernel_module} could not be imported ({exc})"


def _register_family(descriptor: OpDescriptor, suffix: str) -> None:
    for name, fake in descriptor.fakes.items():
        register_fake_once(f"vlengine::{suffixed(name, suffix)}", fake)
    for name, autograd in descriptor.autograd.items():
        register_autograd_once(f"vlengine::{suffixed(name, suffix)}",
                               functools.partial(autograd.backward, BackendOps(suffix)),
                               autograd.setup_context)


def descriptors() -> list[OpDescriptor]:
    """Every registered op, by name."""
    import vlengine.ops  # noqa: F401 - importing the package registers every op

    return sorted(_DESCRIPTORS.values(), key=lambda d: d.name)


def find(op: str) -> OpDescriptor | None:
    """The descriptor of a public op name or of its library op name."""
    if op in _DESCRIPTORS:
        return _DESCRIPTORS[op]
    return next((d for d in _DESCRIPTORS.values() if d.library_op == op), None)


def kernel_error(library_op: str) -> str | None:
    return _KERNEL_ERRORS.get(library_op)


def triton_registered(library_op: str) -> bool:
    return has_op(f"vlengine::{library_op}_triton")
