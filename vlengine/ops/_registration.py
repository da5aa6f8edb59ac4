"""The torch.library calls that register a descriptor's fake kernels and autograd.

Each fused op exists as one torch.library op per compiled backend (the C++ op
``vlengine::<name>`` with CPU and CUDA kernels, and the Triton op
``vlengine::<name>_triton``), each with a backward op beside it. This module
wires a forward op to its backward op so that autograd, torch.compile and
torch.library.opcheck see a complete operator.
"""

from __future__ import annotations

from typing import Callable

import torch


def has_op(qualified: str) -> bool:
    namespace, name = qualified.split("::")
    return hasattr(getattr(torch.ops, namespace), name)


def register_fake_once(qualified: str, fn: Callable) -> None:
    """register_fake, skipping ops that do not exist (extension not built) or already have one."""
    if not has_op(qualified):
        return
    try:
        torch.library.register_fake(qualified, fn)
    except RuntimeError as exc:  # already registered (module reloaded)
        if "already has" not in str(exc) and "already registered" not in str(exc):
            raise


def register_autograd_once(qualified: str, backward: Callable, setup_context: Callable) -> None:
    if has_op(qualified):
        torch.library.register_autograd(qualified, backward, setup_context=setup_context)


def registered_fake(qualified: str) -> Callable | None:
    """The fake kernel registered for an op, unwrapped; None if it has none.

    torch keeps the fakes of Python-defined ops (triton_op) on their CustomOpDef
    and those of C++ ops in its simple registry; a triton_op without a
    registered fake reports its own launcher, which is not a fake kernel.
    """
    from torch._library import simple_registry
    from torch._library.custom_ops import _maybe_get_opdef

    opdef = _maybe_get_opdef(qualified)
    if opdef is not None:
        fn = opdef._abstract_fn
    else:
        kernel = simple_registry.singleton.find(qualified).fake_impl.kernel
        fn = None if kernel is None else _unwrap_stub_check(kernel.func)
    return fn


def _unwrap_stub_check(fn: Callable) -> Callable:
    """torch wraps a C++ op's fake in a closure that checks the C++ pystub once; return the fake inside."""
    for cell in getattr(fn, "__closure__", None) or ():
        if callable(cell.cell_contents):
            return cell.cell_contents
    return fn
