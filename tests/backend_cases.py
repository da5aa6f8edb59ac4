"""Which backends of an op the tests can run here, as pytest parameters."""

import pytest
import torch


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
