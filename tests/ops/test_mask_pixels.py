"""vlengine.ops.mask_pixels: every backend against VL-BERT's own per-box slicing loop."""

import math

import pytest
import torch
from backend_cases import backend_params

import vlengine.ops as ops

BACKENDS = backend_params("mask_pixels") + [pytest.param("reference", "cpu", id="reference")]


def vlbert_loop(images, boxes, fill):
    """What VL-BERT's data loader does, per box (with the clamp it applies first)."""
    out = images.clone()
    n, c, h, w = images.shape
    fill = torch.as_tensor(fill, dtype=images.dtype).reshape(-1, 1, 1).expand(c, 1, 1)
    for b, x1, y1, x2, y2 in boxes.tolist():
        lo_x, hi_x = max(math.floor(x1), 0), min(math.floor(x2), w - 1)
        lo_y, hi_y = max(math.floor(y1), 0), min(math.floor(y2), h - 1)
        if lo_x <= hi_x and lo_y <= hi_y:
            out[int(b), :, lo_y:hi_y + 1, lo_x:hi_x + 1] = fill
    return out


def random_boxes(gen, k, n, h, w):
    x1 = torch.rand(k, generator=gen) * w * 1.4 - 0.2 * w
    y1 = torch.rand(k, generator=gen) * h * 1.4 - 0.2 * h
    bw = torch.rand(k, generator=gen) * w * 0.6
    bh = torch.rand(k, generator=gen) * h * 0.6
    bw[::4] = 0  # zero-width boxes still cover one column (inclusive rule)
    idx = torch.randint(0, n, (k,), generator=gen).float()
    return torch.stack([idx, x1, y1, x1 + bw, y1 + bh], 1)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fill", [0.0, -1.5, "per_channel"])
def test_matches_vlbert_loop(backend, device, dtype, fill, rng):
    images = torch.randn(3, 3, 17, 23, generator=rng).to(dtype)
    boxes = random_boxes(rng, 11, 3, 17, 23)
    value = [0.485, -0.456, 0.406] if fill == "per_channel" else fill
    expected = vlbert_loop(images, boxes, value)
    out = ops.mask_pixels(images.to(device), boxes.to(device), value, backend=backend)
    assert torch.equal(out.cpu(), expected)
    assert not torch.equal(images, expected)  # out of place: the input is untouched


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "non_contiguous"])
def test_inplace_and_layouts(backend, device, layout, rng):
    images = torch.randn(2, 4, 12, 9, generator=rng).to(device)
    if layout == "channels_last":
        images = images.to(memory_format=torch.channels_last)
    elif layout == "non_contiguous":
        images = torch.cat([images, images], 3)[..., ::2]
    boxes = random_boxes(rng, 6, 2, 12, 9).to(device)
    expected = vlbert_loop(images.cpu(), boxes.cpu(), 0.25)
    out = ops.mask_pixels(images, boxes, 0.25, inplace=True, backend=backend)
    assert out.data_ptr() == images.data_ptr()
    assert torch.equal(images.cpu(), expected)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradient_is_zero_where_filled(backend, device, rng):
    images = torch.randn(2, 2, 6, 7, generator=rng, dtype=torch.float64, device=device, requires_grad=True)
    boxes = torch.tensor([[0, 1.0, 1.0, 3.5, 2.2], [1, 4.0, 0.0, 10.0, 10.0]], dtype=torch.float64, device=device)
    out = ops.mask_pixels(images, boxes, 3.0, backend=backend)
    (g,) = torch.autograd.grad(out.sum(), images)
    covered = vlbert_loop(torch.zeros(2, 2, 6, 7, dtype=torch.float64), boxes.cpu(), 1.0).bool()
    assert torch.equal(g.cpu(), (~covered).double())
    assert torch.autograd.gradcheck(lambda x: ops.mask_pixels(x, boxes, 0.5, backend=backend), (images,),
                                    fast_mode=backend == "triton")


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_inplace_on_a_leaf_that_needs_grad_keeps_the_graph(backend, device):
    base = torch.randn(1, 1, 4, 4, device=device, requires_grad=True)
    images = base * 1.0  # a non-leaf; in-place on it must stay differentiable
    ops.mask_pixels(images, torch.tensor([[0, 0.0, 0.0, 1.0, 1.0]], device=device), inplace=True, backend=backend)
    (g,) = torch.autograd.grad(images.sum(), base)
    assert g[0, 0, :2, :2].abs().sum() == 0 and g[0, 0, 2:, 2:].eq(1).all()


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    images = torch.randn(2, 3, 5, 5, device=device)
    assert torch.equal(ops.mask_pixels(images, torch.zeros(0, 5, device=device), backend=backend), images)
    empty = torch.zeros(0, 3, 5, 5, device=device)
    assert ops.mask_pixels(empty, torch.zeros(0, 5, device=device), backend=backend).shape == empty.shape


def test_list_of_boxes_form():
    images = torch.randn(2, 1, 6, 6)
    as_list = [torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[3.0, 3.0, 5.0, 5.0]])]
    as_rois = torch.tensor([[0, 0.0, 0.0, 2.0, 2.0], [1, 3.0, 3.0, 5.0, 5.0]])
    assert torch.equal(ops.mask_pixels(images, as_list), ops.mask_pixels(images, as_rois))


def test_opcheck(rng):
    if not hasattr(torch.ops.vlengine, "mask_pixels"):
        pytest.skip("vlengine._C not built")
    images = torch.randn(2, 3, 6, 5, generator=rng, dtype=torch.float64, requires_grad=True)
    boxes = random_boxes(rng, 4, 2, 6, 5).double()
    torch.library.opcheck(torch.ops.vlengine.mask_pixels, (images, boxes, torch.tensor([1.0, 2.0, 3.0]).double()))
    torch.library.opcheck(torch.ops.vlengine.mask_pixels_, (images.detach().clone(), boxes, torch.tensor(0.0).double()))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_bad_input(backend):
    images = torch.randn(2, 3, 8, 8)
    ok = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match="fill"):
        ops.mask_pixels(images, ok, [0.0, 1.0], backend=backend)                     # wrong fill length
    with pytest.raises(ValueError, match="images"):
        ops.mask_pixels(images[0], ok, backend=backend)                              # wrong ndim
    with pytest.raises(ValueError, match="boxes"):
        ops.mask_pixels(images, ok[:, 1:], backend=backend)                          # not [K, 5]
    with pytest.raises(ValueError, match="batch index"):
        ops.mask_pixels(images, torch.tensor([[2, 1.0, 1, 2, 2]]), backend=backend)  # out of range
    with pytest.raises(ValueError, match="non-finite"):
        ops.mask_pixels(images, torch.tensor([[0, float("nan"), 1, 2, 2]]), backend=backend)
    with pytest.raises(ValueError, match="x2 < x1"):
        ops.mask_pixels(images, torch.tensor([[0, 1.0, 3, 2, 2]]), backend=backend)
    with pytest.raises(TypeError, match="images"):
        ops.mask_pixels(images.long(), ok, backend=backend)
    with pytest.raises(RuntimeError, match="one device"):
        ops.mask_pixels(images, ok.to("meta"), backend=backend)
