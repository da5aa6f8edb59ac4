"""pytest-benchmark setup for ``python -m pytest benchmarks --benchmark-only``.

Options (beside pytest-benchmark's own ``--benchmark-*``):
    --bench-device cpu|cuda   where the ops run (default: cuda when visible)
    --bench-size tiny|small|readme   input sizes (tiny: a smoke run for CI; readme: the sizes
                              benchmarks/README.md quotes)

Triton kernels on a machine without a GPU run through Triton's interpreter, which must be
switched on before any kernel is defined: set here, as tests/conftest.py does for the tests.
"""

import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (HERE, os.path.dirname(HERE)):  # the scripts' helpers, then the checkout's vlengine
    if path not in sys.path:
        sys.path.insert(0, path)

SIZES = ("tiny", "small", "readme")


def pytest_addoption(parser):
    group = parser.getgroup("vlengine benchmarks")
    group.addoption("--bench-device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=("cpu", "cuda"), help="device the op benchmarks run on")
    group.addoption("--bench-size", default="tiny", choices=SIZES,
                    help="input sizes: tiny (CI smoke), small, readme (the sizes benchmarks/README.md quotes)")


@pytest.fixture(scope="session")
def bench_device(request):
    device = request.config.getoption("--bench-device")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda: no CUDA device is visible")
    return device


@pytest.fixture(scope="session")
def bench_size(request):
    return request.config.getoption("--bench-size")
