"""vlengine.ops.box_iou_batched: every backend against the reference, torchvision and a numpy loop."""

import math

import pytest
import torch
from box_samples import backend_params, numpy_iou, opcheck_utils, random_boxes

import vlengine.ops as ops
from vlengine.ops import reference

BACKENDS = backend_params("box_iou_batched")
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES = [(3, 7, 5), (2, 1, 1), (1, 97, 41), (2, 0, 3), (2, 4, 0), (0, 3, 3)]


def _run(backend, device, b1, b2):
    return ops.box_iou_batched(b1.to(device), b2.to(device), backend=backend).cpu()


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference_exactly(backend, device, dtype, shape, rng):
    # Every backend evaluates the same expression in the same order (no FMA, rounded
    # division), so results are bit-identical, not merely close.
    b, n, m = shape
    b1, b2 = random_boxes(b, n, rng, dtype), random_boxes(b, m, rng, dtype)
    expected = reference.box_iou_batched(b1, b2)
    got = _run(backend, device, b1, b2)
    assert got.dtype == dtype and got.shape == (b, n, m)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("backend,device", BACKENDS + [pytest.param("reference", "cpu", id="reference-cpu")])
def test_matches_numpy_loop_and_torchvision(backend, device, rng):
    torchvision = pytest.importorskip("torchvision")
    b1, b2 = random_boxes(4, 23, rng, torch.float64), random_boxes(4, 17, rng, torch.float64)
    got = _run(backend, device, b1, b2)
    for img in range(4):
        brute = torch.from_numpy(numpy_iou(b1[img].numpy(), b2[img].numpy()))
        torch.testing.assert_close(got[img], brute, rtol=1e-12, atol=1e-12)
        tv = torchvision.ops.box_iou(b1[img], b2[img])
        defined = ~tv.isnan()  # torchvision gives NaN for two zero-area boxes; we give 0
        torch.testing.assert_close(got[img][defined], tv[defined], rtol=1e-12, atol=1e-12)
        assert (got[img][~defined] == 0).all()


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_zero_union_is_zero_not_nan(backend, device):
    point = torch.tensor([[[3.0, 3.0, 3.0, 3.0], [1.0, 1.0, 1.0, 5.0]]])  # a point and a vertical segment
    got = _run(backend, device, point, point)
    assert torch.equal(got, torch.zeros(1, 2, 2))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_known_values(backend, device):
    a = torch.tensor([[[0.0, 0.0, 2.0, 2.0]]])
    b = torch.tensor([[[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.5, 0.5, 1.5, 1.5]]])
    got = _run(backend, device, a, b)
    torch.testing.assert_close(got, torch.tensor([[[1.0, 1.0 / 7.0, 0.0, 0.25]]]))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_non_contiguous_inputs(backend, device, rng):
    b1 = random_boxes(5, 9, rng).transpose(0, 1).contiguous().transpose(0, 1)   # strided batch
    b2 = random_boxes(5, 6, rng)[:, ::2]
    assert not b1.is_contiguous() and not b2.is_contiguous()
    torch.testing.assert_close(_run(backend, device, b1, b2), reference.box_iou_batched(b1, b2), rtol=0, atol=0)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradcheck_float64(backend, device, rng):
    # Continuous random boxes (no ties): the IoU is differentiable there.
    b1 = random_boxes(2, 4, rng, torch.float64, grid=False, special=False).to(device).requires_grad_()
    b2 = random_boxes(2, 3, rng, torch.float64, grid=False, special=False).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: ops.box_iou_batched(x, y, backend=backend), (b1, b2))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_backward_matches_autograd_through_reference(backend, device, rng):
    b1 = random_boxes(3, 8, rng, torch.float64).requires_grad_()   # grid boxes: ties and w = 0 included
    b2 = random_boxes(3, 6, rng, torch.float64).requires_grad_()
    grad = torch.randn(3, 8, 6, generator=rng, dtype=torch.float64)
    expected = torch.autograd.grad(reference.box_iou_batched(b1, b2), (b1, b2), grad)
    x, y = b1.detach().to(device).requires_grad_(), b2.detach().to(device).requires_grad_()
    got = torch.autograd.grad(ops.box_iou_batched(x, y, backend=backend), (x, y), grad.to(device))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.cpu(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_opcheck(backend, device, rng):
    op = torch.ops.vlengine.box_iou_batched_triton if backend == "triton" else torch.ops.vlengine.box_iou_batched
    for dtype in (torch.float32, torch.float64):
        b1 = random_boxes(2, 5, rng, dtype).to(device).requires_grad_(dtype == torch.float64)
        b2 = random_boxes(2, 3, rng, dtype).to(device).requires_grad_(dtype == torch.float64)
        torch.library.opcheck(op, (b1, b2), test_utils=opcheck_utils(backend, device))


def test_torch_compile(rng):
    fn = torch.compile(lambda a, b: ops.box_iou_batched(a, b).sum(), backend="aot_eager", fullgraph=True)
    b1 = random_boxes(2, 5, rng, torch.float64, grid=False, special=False).requires_grad_()
    b2 = random_boxes(2, 4, rng, torch.float64, grid=False, special=False)
    fn(b1, b2).backward()
    expected = torch.autograd.grad(reference.box_iou_batched(b1, b2).sum(), b1)[0]
    torch.testing.assert_close(b1.grad, expected)


# ---- bad input ----

@pytest.mark.parametrize("b1,b2,error,words", [
    (torch.zeros(2, 4), torch.zeros(2, 3, 4), ValueError, "boxes1 must have 3 dimensions"),
    (torch.zeros(2, 3, 5), torch.zeros(2, 3, 4), ValueError, "boxes1 must be [B, N, 4]"),
    (torch.zeros(2, 3, 4, dtype=torch.int64), torch.zeros(2, 3, 4), TypeError, "boxes1 must be a floating"),
    (torch.zeros(2, 3, 4), torch.zeros(3, 3, 4), ValueError, "same batch size"),
    (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.float64), TypeError, "same dtype"),
    (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, device="meta"), RuntimeError, "one device"),
    ([[0.0, 0, 1, 1]], torch.zeros(1, 1, 4), TypeError, "must be a torch.Tensor"),
])
def test_bad_shapes_dtypes_devices(b1, b2, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        ops.box_iou_batched(b1, b2)


@pytest.mark.parametrize("value,words", [
    ([[5.0, 0.0, 1.0, 1.0]], "x2 < x1"),
    ([[0.0, 5.0, 1.0, 1.0]], "y2 < y1"),
    ([[0.0, 0.0, math.nan, 1.0]], "non-finite"),
    ([[0.0, -math.inf, 1.0, 1.0]], "non-finite"),
])
def test_bad_box_values(value, words):
    good = torch.zeros(1, 2, 4)
    bad = torch.cat([torch.zeros(1, 1, 4), torch.tensor([value])], dim=1)
    with pytest.raises(ValueError, match=rf"boxes2\[0, 1\] has .*{words}|boxes2\[0, 1\] has a {words}"):
        ops.box_iou_batched(good, bad)


# Triton's interpreter runs the kernel in numpy, which warns about inf - inf: that is this test's input.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("backend,device", BACKENDS + [pytest.param("reference", "cpu", id="reference-cpu")])
def test_unchecked_garbage_never_gives_nan(backend, device):
    # With value checks off (e.g. inside torch.compile) inverted or NaN boxes must
    # still give finite IoUs, never NaN and never a crash.
    garbage = torch.tensor([[[5.0, 5.0, 1.0, 1.0], [math.nan, 0.0, 1.0, 1.0], [0.0, 0.0, math.inf, 1.0]]])
    ops.set_value_checks(False)
    try:
        got = _run(backend, device, garbage, garbage)
    finally:
        ops.set_value_checks(True)
    assert torch.isfinite(got).all()


def test_explicit_backend_that_cannot_run_says_why():
    if torch.cuda.is_available():
        pytest.skip("the CUDA backend can run here")
    with pytest.raises(RuntimeError, match="backend 'cuda' cannot run"):
        ops.box_iou_batched(torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), backend="cuda")
