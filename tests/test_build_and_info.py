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
    backend_lines = out.stdout.split("backends (ok", 1)[1].splitlines()
    for line in backend_lines:
        if line.strip().startswith(("cpu ", "cuda ", "triton ")) and not line.rstrip().endswith(" ok"):
            assert "no: " in line and len(line.split("no: ", 1)[1]) > 10
