"""The dtype table: which dtypes each backend takes on which GPU, and the dispatch that follows it.

No GPU here: the GPU's compute capability is mocked where the dispatch reads it
(torch.cuda.is_available / get_device_capability), and the CUDA extension's
loader where a test needs the cuda backend to count as installed.
"""

import warnings

import pytest
import torch

import vlengine.ops as ops
from vlengine.ops import _backend, _dtypes, _extension, _registry

CUDA = torch.device("cuda", 0)
TABLE = _dtypes.KERNEL_DTYPES


@pytest.fixture
def gpu(monkeypatch):
    """Pretend a GPU of a given capability is visible and the CUDA extension loaded: gpu((7, 5))."""
    def pretend(capability, cuda_extension=True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(_extension, "load_cuda", lambda: object() if cuda_extension else None)
        monkeypatch.setattr(_extension, "cuda_error", lambda: None if cuda_extension else "not built (mocked)")
        monkeypatch.setattr(_backend, "_warned", set())  # the mocked missing build warns into a fresh record
    return pretend


def test_every_compiled_op_lists_every_floating_dtype_for_each_of_its_backends():
    for d in _registry.descriptors():
        if not d.compiled:
            continue
        for backend in ("cpu", "cuda", "triton"):
            assert set(d.dtypes[backend]) == set(_dtypes.FLOATING), (d.name, backend)


@pytest.mark.parametrize("backend, dtype, capability, refused", [
    ("triton", torch.bfloat16, (7, 5), "need sm_80 or newer for bfloat16; this GPU is sm_75"),
    ("triton", torch.float16, (7, 5), "need sm_80 or newer for float16; this GPU is sm_75"),
    ("triton", torch.bfloat16, (8, 0), None),
    ("triton", torch.float32, (9, 0), None),
    ("cuda", torch.bfloat16, (7, 5), None),        # c10::BFloat16 converts in software below sm_80
    ("cuda", torch.float16, (7, 0), None),
    ("cuda", torch.float32, (6, 1), "need sm_70 or newer for float32; this GPU is sm_61"),
    ("cpu", torch.bfloat16, None, None),
    ("triton", torch.bfloat16, None, None),        # the interpreter: no GPU, the dtype alone decides
    ("cpu", torch.float8_e4m3fn, None, "do not take float8_e4m3fn (they take float32, float64, float16, bfloat16)"),
])
def test_reason_unsupported(backend, dtype, capability, refused):
    reason = _dtypes.reason_unsupported(TABLE, backend, dtype, capability)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason


def test_a_backend_with_no_dtype_on_the_gpu_says_which_architecture_it_needs():
    assert _dtypes.reason_unsupported(TABLE, "triton", None, (8, 6)) is None
    assert "need sm_80 or newer; this GPU is sm_75" in _dtypes.reason_unsupported(TABLE, "triton", None, (7, 5))
    assert _dtypes.supported(TABLE, "triton", (7, 5)) == []
    assert _dtypes.supported(TABLE, "cuda", (7, 5)) == list(_dtypes.FLOATING)


def test_naming_a_backend_that_cannot_take_the_dtype_on_this_gpu_is_refused_before_any_launch(gpu):
    gpu((7, 5))
    d = _registry.find("roi_align_masked")
    with pytest.raises(ValueError) as info:
        d.select(CUDA, "triton", torch.bfloat16)
    message = str(info.value)
    for part in ("roi_align_masked", "'triton'", "bfloat16", "sm_75", "sm_80", "backend='cuda'", "backend='reference'"):
        assert part in message, message


def test_the_refusal_offers_the_dtypes_the_backend_does_take():
    with pytest.raises(ValueError, match=r"or inputs of float32 / float64 / float16 / bfloat16"):
        _registry.find("mask_pixels").select(torch.device("cpu"), "cpu", torch.float8_e5m2)


def test_a_gpu_older_than_the_cuda_kernels_need_is_refused_by_name(gpu):
    gpu((6, 1))
    with pytest.raises(ValueError, match=r"contrastive_loss: backend 'cuda' cannot run float16 here: .*sm_61"):
        _registry.find("contrastive_loss").select(CUDA, "cuda", torch.float16)


@pytest.mark.parametrize("capability, cuda_extension, dtype, chosen", [
    ((7, 5), True, torch.bfloat16, "cuda"),
    ((7, 5), False, torch.bfloat16, "reference"),  # Triton cannot run on sm_75: skipped, not refused
    ((8, 0), False, torch.bfloat16, "triton"),
    ((6, 1), True, torch.float32, "reference"),
])
def test_dispatch_skips_backends_that_cannot_take_the_dtype(gpu, capability, cuda_extension, dtype, chosen):
    gpu(capability, cuda_extension)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mocked missing CUDA build warns once
        assert _registry.find("box_iou_batched").select(CUDA, None, dtype) == chosen


def test_the_public_op_checks_the_dtype_before_the_kernel_runs():
    images = torch.zeros(1, 1, 4, 4, dtype=torch.float8_e4m3fn)
    boxes = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]])
    for backend in ("cpu", "triton"):
        if _backend.reason_unavailable(backend, torch.device("cpu"), "mask_pixels") is not None:
            continue
        with pytest.raises(ValueError, match=f"mask_pixels: backend '{backend}' cannot run float8_e4m3fn"):
            ops.mask_pixels(images, boxes, backend=backend)


def test_not_supported_reasons_take_the_dtype():
    reasons = ops.not_supported_reasons("cpu", "roi_align_masked", torch.float8_e4m3fn)
    assert reasons["reference"] is None
    if _extension.load() is not None:
        assert "do not take float8_e4m3fn" in reasons["cpu"]
    assert ops.not_supported_reasons("cpu", "roi_align_masked", torch.bfloat16)["cpu"] == \
        ops.not_supported_reasons("cpu", "roi_align_masked")["cpu"]
