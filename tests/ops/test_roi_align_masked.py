"""vlengine.ops.roi_align_masked / roi_align: every backend against the reference and torchvision."""

import pytest
import torch
from backend_cases import backend_params

import vlengine.ops as ops
from vlengine.ops import reference

torchvision = pytest.importorskip("torchvision")

BACKENDS = backend_params("roi_align_masked")
# Per-dtype tolerances (atol, rtol) against the reference computed in float32/float64.
TOL = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (2e-6, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def random_boxes(gen, k, batch, height, width, scale, *, dtype=torch.float32):
    """Boxes in image coordinates (map / scale) of every awkward kind: partly outside the
    image, zero-size, sub-pixel, and ordinary ones."""
    img_h, img_w = height / scale, width / scale
    kinds = torch.randint(0, 4, (k,), generator=gen)
    x1 = torch.rand(k, generator=gen, dtype=torch.float64) * img_w * 1.2 - 0.1 * img_w
    y1 = torch.rand(k, generator=gen, dtype=torch.float64) * img_h * 1.2 - 0.1 * img_h
    w = torch.rand(k, generator=gen, dtype=torch.float64) * img_w * 0.8
    h = torch.rand(k, generator=gen, dtype=torch.float64) * img_h * 0.8
    w = torch.where(kinds == 1, torch.zeros_like(w), w)                  # zero width
    h = torch.where(kinds == 2, h * 0.01 / scale, h)                     # sub-pixel height
    w = torch.where(kinds == 2, w * 0.01 / scale, w)
    idx = torch.randint(0, batch, (k,), generator=gen).double()
    return torch.stack([idx, x1, y1, x1 + w, y1 + h], dim=1).to(dtype)


def make_case(gen, dtype=torch.float32, n=2, c=5, h=11, w=13, k=7, m=3, scale=0.5):
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).to(dtype)
    rois = random_boxes(gen, k, n, h, w, scale)
    masked = random_boxes(gen, m, n, h, w, scale)
    return x, rois, masked


# Every dtype, aligned and sampling mode appears twice (a full product is slow under Triton's interpreter).
CONFIGS = [(torch.float32, False, -1), (torch.float32, True, 2), (torch.float64, True, -1), (torch.float64, False, 2),
           (torch.float16, False, -1), (torch.float16, True, 2), (torch.bfloat16, True, -1), (torch.bfloat16, False, 2)]


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype,aligned,sampling_ratio", CONFIGS)
def test_matches_reference(backend, device, dtype, aligned, sampling_ratio, rng):
    x, rois, masked = make_case(rng, dtype, h=9, w=14)
    x, rois, masked = x.to(device), rois.to(device), masked.to(device)
    out = ops.roi_align_masked(x, rois, masked, (3, 4), 0.5, sampling_ratio, aligned, backend=backend)
    ref = reference.roi_align_masked(x, rois, masked, (3, 4), 0.5, sampling_ratio, aligned)
    assert out.dtype == dtype and out.shape == (rois.shape[0], x.shape[1], 3, 4)
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(out.float().cpu(), ref.float().cpu(), atol=atol, rtol=rtol)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("aligned,sampling_ratio", [(False, -1), (True, 1), (False, 3), (True, -1)])
def test_backward_matches_reference(backend, device, aligned, sampling_ratio, rng):
    x, rois, masked = make_case(rng, torch.float64, n=3, c=4, h=10, w=7, k=9, m=4, scale=1.0)
    x = x.to(device).requires_grad_()
    rois, masked = rois.to(device), masked.to(device)
    grad_out = torch.randn(rois.shape[0], 4, 2, 3, generator=rng, dtype=torch.float64).to(device)
    out = ops.roi_align_masked(x, rois, masked, (2, 3), 1.0, sampling_ratio, aligned, backend=backend)
    (g,) = torch.autograd.grad(out, x, grad_out)
    ref = reference.roi_align_masked(x, rois, masked, (2, 3), 1.0, sampling_ratio, aligned)
    (g_ref,) = torch.autograd.grad(ref, x, grad_out)
    torch.testing.assert_close(g, g_ref, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("backend,device", BACKENDS + [pytest.param("reference", "cpu", id="reference")])
def test_gradcheck(backend, device, rng):
    x, rois, masked = make_case(rng, torch.float64, n=2, c=2, h=6, w=5, k=3, m=2, scale=1.0)
    x = x.to(device).requires_grad_()
    rois, masked = rois.to(device), masked.to(device)

    def fn(inp):
        return ops.roi_align_masked(inp, rois, masked, (2, 2), 1.0, 2, False, backend=backend)

    # fast_mode checks a random projection of the Jacobian: the full one is hundreds of
    # kernel launches, minutes under Triton's interpreter.
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6, fast_mode=backend == "triton")


@pytest.mark.parametrize("backend,device", BACKENDS + [pytest.param("reference", "cpu", id="reference")])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
def test_unmasked_equals_torchvision(backend, device, aligned, sampling_ratio, rng):
    x, rois, _ = make_case(rng, torch.float32, n=2, c=3, h=12, w=15, k=8)
    x, rois = x.to(device), rois.to(device)
    out = ops.roi_align(x, rois, (4, 3), 0.5, sampling_ratio, aligned, backend=backend)
    tv = torchvision.ops.roi_align(x, rois, (4, 3), 0.5, sampling_ratio, aligned)
    if backend == "cpu":
        # Same arithmetic in the same order as torchvision's CPU kernel: bit-for-bit.
        assert torch.equal(out, tv)
    else:
        torch.testing.assert_close(out, tv, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_fused_equals_mask_then_torchvision(backend, device, rng):
    """The contract: roi_align(mask_pixels(input, masked boxes * scale), rois) in one pass."""
    scale = 0.25
    x, rois, masked = make_case(rng, torch.float32, n=3, c=6, h=13, w=10, k=12, m=6, scale=scale)
    x, rois, masked = x.to(device), rois.to(device), masked.to(device)
    scaled = masked.clone()
    scaled[:, 1:] *= scale
    composed = torchvision.ops.roi_align(ops.mask_pixels(x, scaled, backend="reference"), rois, 5, scale, 1, False)
    fused = ops.roi_align_masked(x, rois, masked, 5, scale, 1, False, backend=backend)
    torch.testing.assert_close(fused, composed, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_edge_cases(backend, device, rng):
    x = torch.randn(2, 3, 8, 9, generator=rng).to(device)
    empty = torch.zeros(0, 5, device=device)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0], [1, 0.0, 0.0, 8.0, 7.0]], device=device)
    # no RoIs -> empty output of the right shape
    assert ops.roi_align_masked(x, empty, rois, 2, backend=backend).shape == (0, 3, 2, 2)
    # a masked box covering the whole RoI's support -> exactly zero
    cover = torch.tensor([[0, -5.0, -5.0, 50.0, 50.0]], device=device)
    out = ops.roi_align_masked(x, rois, cover, 2, 1.0, 2, False, backend=backend)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    assert out[1].abs().sum() > 0  # the other image is untouched
    # masked boxes of another image do not leak across the batch
    other = torch.tensor([[1, 0.0, 0.0, 3.0, 3.0]], device=device)
    torch.testing.assert_close(ops.roi_align_masked(x, rois[:1], other, 2, backend=backend),
                               ops.roi_align(x, rois[:1], 2, backend=backend))
    # list-of-boxes form, as torchvision takes it
    as_list = [rois[:1, 1:], rois[1:, 1:]]
    torch.testing.assert_close(ops.roi_align(x, as_list, 2, backend=backend), ops.roi_align(x, rois, 2, backend=backend))


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "non_contiguous"])
def test_memory_layouts(backend, device, layout, rng):
    x, rois, masked = make_case(rng, torch.float32, n=2, c=4, h=9, w=11, k=5, m=2)
    x, rois, masked = x.to(device), rois.to(device), masked.to(device)
    if layout == "channels_last":
        strided = x.to(memory_format=torch.channels_last)
    else:
        strided = torch.cat([x, x], dim=3)[..., ::2]  # every other column: a strided view
        x = strided.contiguous()
    assert not strided.is_contiguous()
    out = ops.roi_align_masked(strided, rois, masked, 3, 0.5, -1, True, backend=backend)
    torch.testing.assert_close(out, ops.roi_align_masked(x, rois, masked, 3, 0.5, -1, True, backend=backend))


def test_opcheck_cpp_op(rng):
    if not hasattr(torch.ops.vlengine, "roi_align_masked"):
        pytest.skip("vlengine._C not built")
    x, rois, masked = make_case(rng, torch.float64, n=2, c=3, h=6, w=7, k=4, m=2, scale=1.0)
    x.requires_grad_()
    torch.library.opcheck(torch.ops.vlengine.roi_align_masked, (x, rois, masked, 1.0, 2, 2, 2, False))
    grad = torch.randn(4, 3, 2, 2, generator=rng, dtype=torch.float64)
    torch.library.opcheck(torch.ops.vlengine.roi_align_masked_backward,
                          (grad, rois, masked, 1.0, 2, 2, 2, 3, 6, 7, 2, False))


def test_opcheck_triton_op(rng):
    if "triton" not in [p.values[0] for p in BACKENDS if not p.marks]:
        pytest.skip("Triton backend not available")
    x, rois, masked = make_case(rng, torch.float32, n=2, c=3, h=6, w=7, k=3, m=2, scale=1.0)
    x.requires_grad_()
    torch.library.opcheck(torch.ops.vlengine.roi_align_masked_triton, (x, rois, masked, 1.0, 2, 2, 1, False),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


def test_torch_compile_fullgraph(rng):
    if not hasattr(torch.ops.vlengine, "roi_align_masked"):
        pytest.skip("vlengine._C not built")
    x, rois, masked = make_case(rng, torch.float32, n=2, c=3, h=8, w=8, k=4, m=2)

    def head(features, rois, masked):
        pooled = ops.roi_align_masked(features, rois, masked, (2, 2), 0.5, 1, False)
        return pooled.mean(dim=(2, 3)).relu()

    compiled = torch.compile(head, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, rois, masked), head(x, rois, masked))


@pytest.mark.parametrize("backend", ["reference"] + [p.values[0] for p in BACKENDS if not p.marks
                                                     and p.values[1] == "cpu"])
def test_bad_input_names_the_argument(backend):
    x = torch.randn(2, 3, 8, 8)
    good = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    none = torch.zeros(0, 5)
    cases = [
        ((x[0], good, none), ValueError, "input"),                                   # wrong ndim
        ((x, good[:, :4], none), ValueError, "rois"),                                # rois not [K, 5]
        ((x, torch.tensor([[2, 1.0, 1, 4, 4]]), none), ValueError, "batch index"),   # out of range
        ((x, torch.tensor([[0.5, 1.0, 1, 4, 4]]), none), ValueError, "batch index"),  # fractional
        ((x, torch.tensor([[-1, 1.0, 1, 4, 4]]), none), ValueError, "batch index"),  # negative
        ((x, torch.tensor([[0, float("nan"), 1, 4, 4]]), none), ValueError, "non-finite"),
        ((x, torch.tensor([[0, 1.0, 1, float("inf"), 4]]), none), ValueError, "non-finite"),
        ((x, torch.tensor([[0, 5.0, 1, 4, 4]]), none), ValueError, "x2 < x1"),
        ((x, good, torch.tensor([[0, 1.0, 5, 4, 4]])), ValueError, "masked_boxes"),
        ((x, good.long(), none), TypeError, "rois"),                                  # integer boxes
        ((x.long(), good, none), TypeError, "input"),                                 # integer features
    ]
    for args, exc, words in cases:
        with pytest.raises(exc, match=words):
            ops.roi_align_masked(*args, output_size=2, backend=backend)
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_align_masked(x, good, none, (0, 2), backend=backend)
    with pytest.raises(ValueError, match="spatial_scale"):
        ops.roi_align_masked(x, good, none, 2, spatial_scale=0.0, backend=backend)
    with pytest.raises(RuntimeError, match="cannot run here"):
        ops.roi_align_masked(x, good, none, 2, backend="cuda")
    with pytest.raises(RuntimeError, match="one device"):  # a device mismatch, without needing a GPU
        ops.roi_align_masked(x, good.to("meta"), none, 2, backend=backend)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_device_mismatch_and_determinism(rng):
    x, rois, masked = make_case(rng, torch.float32, n=2, c=8, h=16, w=16, k=64, m=4)
    with pytest.raises(RuntimeError, match="one device"):
        ops.roi_align_masked(x.cuda(), rois, masked, 2)
    x = x.cuda().requires_grad_()
    rois, masked = rois.cuda(), masked.cuda()
    grad = torch.randn(64, 8, 3, 3, device="cuda")
    torch.use_deterministic_algorithms(True)
    try:
        grads = [torch.autograd.grad(ops.roi_align_masked(x, rois, masked, 3, backend="cuda"), x, grad)[0]
                 for _ in range(3)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(grads[0], g) for g in grads[1:])
    fast = torch.autograd.grad(ops.roi_align_masked(x, rois, masked, 3, backend="cuda"), x, grad)[0]
    torch.testing.assert_close(fast, grads[0], atol=1e-5, rtol=1e-5)


def test_value_checks_can_be_switched_off():
    x = torch.randn(1, 1, 4, 4)
    bad = torch.tensor([[0, 3.0, 0, 1.0, 1.0]])  # x2 < x1
    ops.set_value_checks(False)
    try:
        ops.roi_align_masked(x, bad, torch.zeros(0, 5), 2, backend="reference")  # no Python check...
        if hasattr(torch.ops.vlengine, "roi_align_masked"):
            with pytest.raises(RuntimeError, match="x2 < x1"):  # ...but the C++ kernel still refuses
                ops.roi_align_masked(x, bad, torch.zeros(0, 5), 2, backend="cpu")
    finally:
        ops.set_value_checks(True)
