"""One record per fused op: what it is called, which backends it has, and how each is registered.

A descriptor drives everything that used to be repeated in every op module:
dispatch (``select``: the backend preference of ``_backend``), the
torch.library registration of the fake kernels and the autograd of the
compiled op and of the Triton op (``_registry.register``), and the listing of
``python -m vlengine.info``. Adding an op means writing its kernels and one
descriptor.

Library op names. An op with compiled backends owns one family of
torch.library ops per backend kind, named after ``library_op``:

    cpu, cuda   vlengine::<library_op>[...]          schema in csrc/ops/<op>.cpp (TORCH_LIBRARY)
    triton      vlengine::<library_op>[...]_triton   schema in kernels/<op>.py (torch.library.triton_op)

where ``[...]`` are the family's other ops (a backward op, an in-place form),
each listed in ``fakes``. An in-place op keeps its trailing underscore last
(``mask_pixels_`` -> ``mask_pixels_triton_``), PyTorch's naming of in-place
ops. A pure-PyTorch op (``library_op=None``) has only its reference and is
listed for completeness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from ._dtypes import KERNEL_DTYPES, DtypeTable

COMPILED_BACKENDS = ("cpu", "cuda", "triton")


def backend_suffix(backend: str) -> str:
    """The library-op name suffix of a backend: the C++ op serves cpu and cuda, the Triton op is apart."""
    return "_triton" if backend == "triton" else ""


def suffixed(name: str, suffix: str) -> str:
    """``name`` with a backend suffix, the in-place underscore kept last."""
    if name.endswith("_"):
        return f"{name[:-1]}{suffix}_"
    return name + suffix


class BackendOps:
    """``torch.ops.vlengine`` seen from one backend: ``ops.<name>`` is ``vlengine::<name><suffix>``.

    Backward formulas are written once against this view, so the same code
    wires the C++ op to its C++ backward op and the Triton op to its Triton one.
    """

    def __init__(self, suffix: str):
        self.suffix = suffix

    def __getattr__(self, name: str):
        return getattr(torch.ops.vlengine, suffixed(name, self.suffix))


@dataclass(frozen=True)
class Autograd:
    """The autograd of a library op: ``backward(ops, ctx, *grads)`` with ``ops`` the backend's BackendOps."""

    setup_context: Callable
    backward: Callable


@dataclass(frozen=True)
class OpDescriptor:
    """Everything vlengine knows about one op.

    name:        the public function (``vlengine.ops.<name>``).
    summary:     one line for ``python -m vlengine.info``.
    reference:   the pure-PyTorch oracle (``vlengine.ops.reference``), the fallback backend.
    library_op:  the torch.library op the compiled backends share (None: a pure-PyTorch op).
    fakes:       library op name (no backend suffix) -> fake kernel, for every op of the family.
    autograd:    library op name -> Autograd (differentiable forward ops only).
    kernel_module: the Triton kernels' module, whose import registers the ``_triton`` ops.
    public:      every public function that runs on this op (``name`` first).
    backends:    the backends the op has, each usable when ``_backend.reason_unavailable`` says so.
    dtypes:      per compiled backend, the dtypes its kernels take and the oldest GPU each needs
                 (``_dtypes``); dispatch skips, or refuses when named, a backend that cannot take
                 the input's dtype on its GPU.
    """

    name: str
    summary: str
    reference: Callable
    library_op: str | None = None
    fakes: Mapping[str, Callable] = field(default_factory=dict)
    autograd: Mapping[str, Autograd] = field(default_factory=dict)
    kernel_module: str | None = None
    public: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("reference", "cpu", "cuda", "triton")
    dtypes: DtypeTable = field(default_factory=lambda: KERNEL_DTYPES)

    def __post_init__(self):
        if not self.public:
            object.__setattr__(self, "public", (self.name,))
        if self.library_op is None:
            object.__setattr__(self, "backends", ("reference",))
        elif self.library_op not in self.fakes:
            raise ValueError(f"op descriptor {self.name!r}: the forward op {self.library_op!r} needs a fake kernel")

    @property
    def compiled(self) -> bool:
        return self.library_op is not None

    def qualified(self, library_name: str, backend: str) -> str:
        """'vlengine::<library_name><suffix>' for a backend."""
        return f"vlengine::{suffixed(library_name, backend_suffix(backend))}"

    def library_ops(self, backend: str) -> list[str]:
        """Every qualified op of this op's family for ``backend`` (forward first)."""
        return [self.qualified(name, backend) for name in self.fakes]

    def op(self, backend: str, library_name: str | None = None):
        """The torch.ops callable of ``backend`` (the forward op unless ``library_name``)."""
        return getattr(BackendOps(backend_suffix(backend)), library_name or self.library_op)

    def select(self, device: torch.device, backend: str | None = None, dtype: torch.dtype | None = None) -> str:
        """The backend to run inputs of ``dtype`` on ``device``: an explicit one (checked), or the fastest usable."""
        from . import _backend

        return _backend.select(self.library_op or self.name, device, backend, dtype)
