"""Shared test setup (helpers shared by test files live in tests/backend_cases.py: a
module named conftest cannot be imported by name, since tests/data and
tests/models have their own conftest.py).

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


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: each test draws its own random inputs, reproducibly."""
    seed = zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF
    return torch.Generator().manual_seed(seed)
