"""Every op goes through one descriptor: registry coverage, fake kernels, documented schemas, import order."""

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vlengine.ops as ops
from vlengine.ops import _registry
from vlengine.ops._registration import has_op, registered_fake

ROOT = Path(__file__).resolve().parents[2]
NOT_OPS = {"not_supported_reasons", "set_value_checks"}  # helpers exported beside the ops


def _public_functions() -> set[str]:
    return {name for name in ops.__all__
            if inspect.isfunction(getattr(ops, name)) and name not in NOT_OPS}


def test_every_op_in_vlengine_ops_has_a_descriptor():
    covered = {name for d in _registry.descriptors() for name in d.public}
    assert _public_functions() <= covered, f"ops without a descriptor: {_public_functions() - covered}"
    for name in covered:
        assert callable(getattr(ops, name)), f"descriptor lists {name}, which vlengine.ops does not export"


def test_every_existing_library_op_has_its_descriptors_fake_kernel():
    checked = 0
    for d in _registry.descriptors():
        if not d.compiled:
            continue
        for backend in ("cpu", "triton"):
            for name, qualified in zip(d.fakes, d.library_ops(backend)):
                if not has_op(qualified):  # extension not built, or triton missing
                    continue
                assert registered_fake(qualified) is d.fakes[name], f"{qualified} lacks its descriptor's fake"
                checked += 1
    assert checked > 0


def test_differentiable_ops_work_in_fake_mode_on_every_backend():
    from torch._subclasses.fake_tensor import FakeTensorMode

    d = _registry.find("contrastive_loss")
    for backend in ("cpu", "triton"):
        if not has_op(d.qualified(d.library_op, backend)):
            continue
        with FakeTensorMode():
            text, image = torch.empty(5, 4, dtype=torch.float64), torch.empty(7, 4, dtype=torch.float64)
            row, col, diag = d.op(backend)(text, image, torch.empty(()), 0, True, False, True)
        assert (row.shape, col.shape, diag.shape) == ((5,), (7,), (5,)) and row.dtype == torch.float64


def test_library_op_names_resolve_to_their_descriptor():
    assert _registry.find("contrastive_loss_stats") is _registry.find("contrastive_loss")
    assert _registry.find("roi_align_masked").public == ("roi_align_masked", "roi_align")
    reasons = ops.not_supported_reasons("cpu", "fused_linear_cross_entropy")
    assert reasons["reference"] is None and "pure-PyTorch" in reasons["cpu"]


def test_readme_documents_every_cpp_schema_in_order():
    readme = (ROOT / "vlengine" / "ops" / "README.md").read_text()
    documented = 0
    for d in _registry.descriptors():
        for name, qualified in zip(d.fakes, d.library_ops("cpu")) if d.compiled else ():
            if not has_op(qualified):
                continue
            schema = getattr(torch.ops.vlengine, qualified.split("::")[1]).default._schema
            signature = str(schema).split(" -> ")[0]
            assert f"`{signature}`" in readme, f"vlengine/ops/README.md does not document {signature}"
            triton = d.qualified(name, "triton")
            if has_op(triton):  # the Triton twin takes the same arguments in the same order
                twin = getattr(torch.ops.vlengine, triton.split("::")[1]).default._schema
                assert [a.name for a in twin.arguments] == [a.name for a in schema.arguments]
            documented += 1
    assert documented > 0


def test_info_lists_the_registry():
    from vlengine import info

    text = info.report()
    for d in _registry.descriptors():
        assert re.search(rf"^\s+{d.name}\s", text, re.M), f"info does not list {d.name}"


def test_kernels_import_nothing_from_vlengine_ops():
    for path in sorted((ROOT / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith("vlengine") for n in names), f"{path.name} imports {names}"


_KERNELS_FIRST = r"""
import importlib, pkgutil
import torch
import vlengine.kernels as kernels
for module in pkgutil.iter_modules(kernels.__path__):   # every kernel module, before vlengine.ops
    importlib.import_module("vlengine.kernels." + module.name)
import vlengine.ops as ops

g = torch.Generator().manual_seed(0)
x = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=g, requires_grad=True)
rois = torch.tensor([[0, 0.5, 1.0, 6.0, 5.0], [1, 2.0, 0.0, 8.0, 6.5]], dtype=torch.float64)
masked = torch.tensor([[0, 1.0, 1.0, 3.0, 2.0]], dtype=torch.float64)
fn = lambda t, backend: ops.roi_align_masked(t, rois, masked, 2, 1.0, 2, False, backend=backend)
assert torch.autograd.gradcheck(lambda t: fn(t, "triton"), (x,), fast_mode=True)
torch.testing.assert_close(torch.autograd.grad(fn(x, "triton").sum(), x)[0],
                           torch.autograd.grad(fn(x, "reference").sum(), x)[0])

boxes = torch.tensor([[0, 1.0, 1.0, 4.0, 3.0]], dtype=torch.float64)
for backend in ("triton", "reference"):
    x.grad = None
    ops.mask_pixels(x, boxes, backend=backend).sum().backward()
    if backend == "triton":
        triton_grad = x.grad.clone()
torch.testing.assert_close(triton_grad, x.grad)

t = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
v = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
grads = [torch.autograd.grad(ops.contrastive_loss(t, v, 0.5, backend=b), (t, v)) for b in ("triton", "reference")]
torch.testing.assert_close(grads[0], grads[1])
corners, sizes = torch.rand(2, 1, 3, 2, dtype=torch.float64, generator=g) * 4
b1 = torch.cat([corners, corners + 1 + sizes], dim=-1).requires_grad_()
b2 = (b1.detach() + 0.3 * torch.rand(1, 3, 4, dtype=torch.float64, generator=g)).requires_grad_()
grads = [torch.autograd.grad(ops.box_iou_batched(b1, b2, backend=b).sum(), (b1, b2)) for b in ("triton", "reference")]
torch.testing.assert_close(grads[0], grads[1])
print("kernels-first gradients ok")
"""


def test_triton_op_has_autograd_when_its_kernel_module_is_imported_first():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _KERNELS_FIRST], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "kernels-first gradients ok" in out.stdout
