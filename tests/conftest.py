"""Shared test setup.

Triton kernels are tested on the CPU through Triton's interpreter when no GPU
is present: TRITON_INTERPRET must be set before any Triton kernel is defined,
so it is set here, before the tests import vlengine.
"""

import os
import zlib

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def available_backends(op: str, device: str = "cpu") -> list[str]:
    """The backends of ``op`` that can run on ``device`` here (reference always)."""
    from vlengine.ops import _backend

    return [b for b, why in _backend.not_supported_reasons(device, op).items() if why is None]


def backend_params(op: str) -> list:
    """pytest params over every backend of ``op``: unavailable ones are skipped with the reason."""
    from vlengine.ops import _backend

    params = []
    for device in ("cpu", "cuda"):
        if device == "cuda" and not torch.cuda.is_available():
            params.append(pytest.param("cuda", "cuda", marks=pytest.mark.skip(reason="no GPU"), id="cuda-cuda"))
            continue
        for backend, why in _backend.not_supported_reasons(device, op).items():
            if backend == "reference":
                continue
            marks = [pytest.mark.skip(reason=why)] if why else []
            params.append(pytest.param(backend, device, marks=marks, id=f"{backend}-{device}"))
    return params


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: each test draws its own random inputs, reproducibly."""
    seed = zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF
    return torch.Generator().manual_seed(seed)
