"""Find the CUDA toolkit and choose the GPU architectures to build for.

Used by ``setup.py`` (loaded by file path, before the package is importable, so
this module must not import torch or anything of vlengine) and by
``python -m vlengine.info``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

# Overrides the architecture list chosen from the toolkit, e.g. "7.0;8.0" or "9.0+PTX".
ARCH_ENV = "VLENGINE_CUDA_ARCH_LIST"
# Set to 1 to build the CPU extension only, even where a toolkit exists.
NO_CUDA_ENV = "VLENGINE_NO_CUDA"


@dataclass(frozen=True)
class Toolkit:
    home: str
    nvcc: str
    version: tuple[int, int]

    @property
    def version_str(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def _nvcc_version(nvcc: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _home_of(nvcc: str) -> str:
    """The toolkit root nvcc belongs to.

    ``nvcc`` on PATH is often a wrapper script or a symlink (here /usr/local/bin/nvcc
    is a script that execs /usr/local/cuda-13.0/bin/nvcc), so the path of the file
    itself says nothing. nvcc's dry run prints the root it really uses as TOP=.
    """
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull],
                             capture_output=True, text=True, timeout=60)
        match = re.search(r"^#\$ TOP=(.+)$", out.stderr + out.stdout, re.MULTILINE)
        if match:
            return os.path.realpath(match.group(1).strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def find_toolkit() -> Toolkit | None:
    """CUDA_HOME / CUDA_PATH if set, else the toolkit of the nvcc on PATH, else /usr/local/cuda."""
    candidates = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "nvcc"))
    on_path = shutil.which("nvcc")
    if on_path:
        candidates.append(on_path)
    candidates.append("/usr/local/cuda/bin/nvcc")
    for nvcc in candidates:
        if not os.path.exists(nvcc):
            continue
        version = _nvcc_version(nvcc)
        if version is None:
            continue
        home = _home_of(nvcc)
        real_nvcc = os.path.join(home, "bin", "nvcc")
        return Toolkit(home=home, nvcc=real_nvcc if os.path.exists(real_nvcc) else nvcc, version=version)
    return None


def default_arch_list(version: tuple[int, int]) -> list[str]:
    """Architectures a toolkit of this version can target, newest carrying PTX.

    CUDA 13 dropped sm_70 (Volta): V100 users build with a 12.x toolkit, which
    still targets it. sm_80 is the A100 and sm_90 the H100; PTX of the newest
    lets the driver JIT for later GPUs.
    """
    if version >= (13, 0):
        # sm_75 is the oldest target CUDA 13 has: building it catches an instruction that
        # needs sm_80 (bf16 atomics and conversions, cp.async) at compile time.
        return ["7.5", "8.0", "9.0+PTX"]
    if version >= (11, 8):
        return ["7.0", "8.0", "9.0+PTX"]
    if version >= (11, 0):
        return ["7.0", "8.0+PTX"]
    return ["7.0+PTX"]


def arch_list(toolkit: Toolkit) -> list[str]:
    override = os.environ.get(ARCH_ENV, "").strip()
    if override:
        return [a for a in re.split(r"[;, ]+", override) if a]
    return default_arch_list(toolkit.version)


def gencode_flags(archs: list[str]) -> list[str]:
    flags = []
    for arch in archs:
        ptx = arch.endswith("+PTX")
        num = arch.replace("+PTX", "").replace(".", "")
        flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
        if ptx:
            flags.append(f"-gencode=arch=compute_{num},code=compute_{num}")
    return flags
