"""The build's toolkit and architecture choice, and `python -m vlengine.info`."""

import subprocess
import sys

import pytest

from vlengine import _toolkit


def test_arch_list_follows_the_toolkit():
    assert "7.0" not in _toolkit.default_arch_list((13, 0))        # CUDA 13 cannot target Volta
    # sm_75 (the oldest CUDA 13 target) is built so that an sm_80-only instruction fails the build
    assert _toolkit.default_arch_list((13, 0)) == ["7.5", "8.0", "9.0+PTX"]
    assert "7.0" in _toolkit.default_arch_list((12, 4))            # V100 users build with 12.x
    assert "9.0+PTX" in _toolkit.default_arch_list((12, 4))


def test_arch_env_overrides(monkeypatch):
    tk = _toolkit.Toolkit(home="/x", nvcc="/x/bin/nvcc", version=(13, 0))
    monkeypatch.setenv(_toolkit.ARCH_ENV, "7.0; 9.0+PTX")
    assert _toolkit.arch_list(tk) == ["7.0", "9.0+PTX"]
    assert _toolkit.gencode_flags(["7.0", "9.0+PTX"]) == [
        "-gencode=arch=compute_70,code=sm_70",
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_90,code=compute_90",
    ]


def test_toolkit_found_through_a_wrapper_script():
    """/usr/local/bin/nvcc here is a script; the toolkit is where nvcc really lives."""
    tk = _toolkit.find_toolkit()
    if tk is None:
        pytest.skip("no CUDA toolkit on this machine")
    assert tk.nvcc.endswith("nvcc") and tk.home.rstrip("/") != "/usr/local"
    assert tk.version >= (11, 0)


def test_info_reports_every_backend():
    out = subprocess.run([sys.executable, "-m", "vlengine.info"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for word in ("torch", "vlengine._C", "roi_align_masked", "mask_pixels", "reference  ok", "triton"):
        assert word in out.stdout
    # every unusable backend says why
    backend_lines = out.stdout.split("backends (ok", 1)[1].split("dtypes each backend takes", 1)[0].splitlines()
    for line in backend_lines:
        if line.strip().startswith(("cpu ", "cuda ", "triton ")) and not line.rstrip().endswith(" ok"):
            assert "no: " in line and len(line.split("no: ", 1)[1]) > 10


def test_info_lists_the_dtypes_of_each_backend():
    out = subprocess.run([sys.executable, "-m", "vlengine.info"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    section = out.stdout.split("dtypes each backend takes", 1)[1].split("pure-PyTorch ops", 1)[0]
    import torch

    if torch.cuda.is_available():
        assert "on the visible GPU" in section and "gpu 0 (sm_" in section
    else:  # the table's requirements
        assert "no GPU visible" in section
        assert "triton  float32 (sm_80+), float64 (sm_80+), float16 (sm_80+), bfloat16 (sm_80+)" in section
        assert "cuda    float32 (sm_70+)" in section and "bfloat16 (sm_70+)" in section
    for op in ("roi_align_masked", "mask_pixels", "box_iou_batched", "iou_neighbourhood_mask", "contrastive_loss"):
        assert op in section


def test_info_on_an_older_gpu_names_what_triton_lacks(monkeypatch):
    import torch

    from vlengine import info
    from vlengine.ops import _registry

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    compiled = [d for d in _registry.descriptors() if d.compiled]
    lines = info._dtype_lines(compiled, gpus=1)
    assert any("gpu 0 (sm_75)" in line for line in lines)
    triton_lines = [line for line in lines if " triton " in line]
    assert len(triton_lines) == len(compiled)
    assert all("none: the triton kernels need sm_80 or newer; this GPU is sm_75" in line for line in triton_lines)
    cuda_lines = [line for line in lines if " cuda " in line]
    assert all(line.rstrip().endswith("float32, float64, float16, bfloat16") for line in cuda_lines)
