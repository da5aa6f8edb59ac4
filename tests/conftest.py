"""Shared test setup (helpers shared by test files live in tests/backend_cases.py: a
module named conftest cannot be imported by name, since tests/data and
tests/models have their own conftest.py).

Triton kernels are tested on the CPU through Triton's interpreter when no GPU
is present: TRITON_INTERPRET must be set before any Triton kernel is defined,
so it is set here, before the tests import vlengine.
"""

import os
import sys
import zlib
from pathlib import Path

import pytest
import torch

# `python -m pytest` puts the checkout root on sys.path, where the top-level kernels/ folder
# (installed as vlengine.kernels) would shadow the PyPI package `kernels` that transformers
# imports; vlengine itself is installed, so the root is not needed on the path.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: each test draws its own random inputs, reproducibly."""
    seed = zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF
    return torch.Generator().manual_seed(seed)
