"""Fake kernels and autograd for ops whose forward and backward are separate library ops.

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
