"""Builds vlengine._C (CPU) always, and vlengine._C_cuda when torch has CUDA and a toolkit is found.

Install with ``pip install --no-build-isolation -e .`` (torch must already be
installed: the extension is compiled against the torch you run). Environment:

    VLENGINE_NO_CUDA=1            CPU extension only
    VLENGINE_CUDA_ARCH_LIST=...   e.g. "7.0;8.0" (default: chosen from the toolkit)
    CUDA_HOME=...                 which toolkit to use (default: the one nvcc on PATH belongs to)
    MAX_JOBS=N                    parallel compile jobs (ninja)
"""

import glob
import importlib.util
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
# The build backend puts the checkout on sys.path, where the top-level kernels/ folder (installed
# as vlengine.kernels) shadows the PyPI package `kernels` (a transformers dependency), whose
# egg_info entry point setuptools then fails to load. Nothing here is imported from the checkout.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]


def _load_toolkit_module():
    # Loaded by path: the package is not importable before it is built.
    spec = importlib.util.spec_from_file_location("_vlengine_toolkit", os.path.join(ROOT, "vlengine", "_toolkit.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


toolkit_mod = _load_toolkit_module()
toolkit = None if os.environ.get(toolkit_mod.NO_CUDA_ENV) == "1" else toolkit_mod.find_toolkit()
if toolkit is not None:
    # torch.utils.cpp_extension reads CUDA_HOME once, at import: set it first, to the
    # toolkit nvcc really belongs to (not the directory of a wrapper script).
    os.environ["CUDA_HOME"] = toolkit.home

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _cxx_standard() -> str:
    """torch's headers need C++20 from 2.10 on, C++17 before."""
    major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    return "-std=c++20" if (major, minor) >= (2, 10) else "-std=c++17"


CXX_STD = _cxx_standard()


def _cuda_extra_includes():
    """Headers the pip CUDA wheels ship (nvidia/cu13/include) that a bare toolkit may lack."""
    dirs = []
    for entry in sys.path:
        dirs += glob.glob(os.path.join(entry, "nvidia", "cu*", "include"))
    return sorted(set(dirs))


def extensions():
    """vlengine._C (schemas + CPU kernels) always; vlengine._C_cuda (CUDA kernels) when a toolkit is found."""
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    # -g0 last: Python's own CFLAGS carry -g, and debug info is ~22 MB of the ~24 MB module.
    cxx_flags = ["-O3", "-fopenmp", CXX_STD, "-g0"]
    cpu_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/ops/*.cpp") + glob.glob("csrc/ops/cpu/*.cpp"))
    exts = [CppExtension("vlengine._C", cpu_sources, include_dirs=include_dirs,
                         extra_compile_args={"cxx": cxx_flags}, extra_link_args=["-fopenmp"])]
    if toolkit is not None and torch.version.cuda is not None:
        archs = toolkit_mod.arch_list(toolkit)
        print(f"vlengine: CUDA {toolkit.version_str} at {toolkit.home}; building for {';'.join(archs)}")
        nvcc_flags = ["-O3", CXX_STD, "--expt-relaxed-constexpr", "-lineinfo"] + toolkit_mod.gencode_flags(archs)
        cuda_sources = sorted(glob.glob("csrc/ops/cuda/*.cu")) + ["csrc/ops/cuda/module.cpp"]
        exts.append(CUDAExtension("vlengine._C_cuda", cuda_sources, include_dirs=include_dirs + _cuda_extra_includes(),
                                  define_macros=[("WITH_CUDA", None)],
                                  extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags}))
    else:
        reason = "VLENGINE_NO_CUDA=1" if os.environ.get(toolkit_mod.NO_CUDA_ENV) == "1" else (
            "no CUDA toolkit found" if toolkit is None else "torch is a CPU build")
        print(f"vlengine: building the CPU extension only ({reason})")
    return exts


setup(
    name="vlengine",
    version="0.1.0",
    description="Fused kernels, models and DeepSpeed pretraining for vision-language BERTs",
    python_requires=">=3.10",
    packages=find_packages(include=["vlengine", "vlengine.*"]) + ["vlengine.kernels", "vlengine.configs"],
    # Triton kernels live in the top-level kernels/ folder and ship inside the package; so do the
    # recipes of train/configs (`vlengine pretrain` with no --config runs vlengine/configs/main_job.yaml).
    package_dir={"vlengine.kernels": "kernels", "vlengine.configs": "train/configs"},
    package_data={"vlengine.configs": ["*.yaml", "finetune/*.yaml", "deepspeed/*.json"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    install_requires=["torch>=2.4", "numpy", "safetensors", "tokenizers", "tqdm", "pyyaml", "pillow", "lmdb", "msgpack",
                      "filelock"],
    extras_require={
        "test": ["pytest", "pytest-benchmark", "transformers", "torchvision", "expecttest", "hypothesis", "matplotlib"],
        "plot": ["matplotlib"],
        "train": ["deepspeed", "tensorboard"],
        "triton": ["triton"],
    },
    entry_points={"console_scripts": ["vlengine=vlengine.cli:run"]},
)
