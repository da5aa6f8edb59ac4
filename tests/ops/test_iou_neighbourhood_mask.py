"""vlengine.ops.iou_neighbourhood_mask: every backend against the reference and a per-box numpy loop."""

import math

import pytest
import torch
from box_samples import backend_params, numpy_neighbourhood, opcheck_utils, random_boxes

import vlengine.ops as ops
from vlengine.ops import reference

BACKENDS = backend_params("iou_neighbourhood_mask")
WITH_REFERENCE = BACKENDS + [pytest.param("reference", "cpu", id="reference-cpu")]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _flags(b, n, rng, valid_p=0.8, anchor_p=0.2):
    valid = torch.rand(b, n, generator=rng) < valid_p
    anchors = torch.rand(b, n, generator=rng) < anchor_p
    return valid, anchors


def _run(backend, device, boxes, valid, anchors, threshold=0.4, inclusive=False):
    out = ops.iou_neighbourhood_mask(boxes.to(device), valid.to(device), anchors.to(device), threshold, inclusive,
                                     backend=backend)
    assert out.dtype == torch.bool and out.shape == valid.shape
    return out.cpu()


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 37), (3, 1), (1, 0), (0, 4)])
@pytest.mark.parametrize("inclusive", [False, True])
def test_matches_reference(backend, device, dtype, shape, inclusive, rng):
    b, n = shape
    boxes = random_boxes(b, n, rng, dtype)
    valid, anchors = _flags(b, n, rng)
    if b > 1:
        valid[1] = False  # a row with no valid box
    for threshold in (0.0, 0.4, 0.75):
        expected = reference.iou_neighbourhood_mask(boxes, valid, anchors, threshold, inclusive)
        assert torch.equal(_run(backend, device, boxes, valid, anchors, threshold, inclusive), expected)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_large_n(backend, device, rng):
    # N >= 256 crosses the CUDA kernel's shared-memory tile and several Triton blocks.
    # (One image under Triton's slow CPU interpreter; more on a GPU.)
    b = 1 if device == "cpu" and backend == "triton" else 4
    boxes = random_boxes(b, 300, rng)
    valid, anchors = _flags(b, 300, rng, anchor_p=0.15)
    expected = reference.iou_neighbourhood_mask(boxes, valid, anchors, 0.4, True)
    assert torch.equal(_run(backend, device, boxes, valid, anchors, 0.4, True), expected)


@pytest.mark.parametrize("backend,device", WITH_REFERENCE)
@pytest.mark.parametrize("inclusive", [False, True])
def test_matches_numpy_loop(backend, device, inclusive, rng):
    boxes = random_boxes(4, 41, rng, torch.float64)
    valid, anchors = _flags(4, 41, rng, anchor_p=0.15)
    for threshold in (0.0, 0.3, 0.4):
        brute = torch.from_numpy(numpy_neighbourhood(boxes, valid, anchors, threshold, inclusive))
        assert torch.equal(_run(backend, device, boxes, valid, anchors, threshold, inclusive), brute)


@pytest.mark.parametrize("backend,device", WITH_REFERENCE)
@pytest.mark.parametrize("dtype", DTYPES)
def test_iou_exactly_at_threshold(backend, device, dtype):
    # Anchor [0,0,5,1] and box [0,0,2,1]: inter 2, union 5, IoU exactly 0.4.
    boxes = torch.tensor([[[0.0, 0.0, 5.0, 1.0], [0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 3.0, 1.0]]], dtype=dtype)
    valid = torch.ones(1, 3, dtype=torch.bool)
    anchors = torch.tensor([[True, False, False]])
    strict = _run(backend, device, boxes, valid, anchors, 0.4, inclusive=False)
    loose = _run(backend, device, boxes, valid, anchors, 0.4, inclusive=True)
    assert strict.tolist() == [[True, False, True]]   # 0.4 is not > 0.4; 0.6 is
    assert loose.tolist() == [[True, True, True]]


@pytest.mark.parametrize("backend,device", WITH_REFERENCE)
def test_padding_and_degenerate_boxes(backend, device):
    boxes = torch.tensor([[
        [0.0, 0.0, 4.0, 4.0],        # 0 valid anchor
        [0.0, 0.0, 4.0, 4.0],        # 1 identical to the anchor -> masked
        [4.0, 0.0, 8.0, 4.0],        # 2 touches the anchor (IoU 0) -> not masked
        [2.0, 2.0, 2.0, 2.0],        # 3 zero-area anchor: masked as an anchor, masks nothing
        [2.0, 2.0, 2.0, 2.0],        # 4 identical zero-area box: IoU 0 (not NaN) -> not masked
        [10.0, 10.0, 20.0, 20.0],    # 5 padded anchor: ignored
        [10.0, 10.0, 20.0, 20.0],    # 6 would match the padded anchor -> not masked
        [math.nan, 0.0, -5.0, 1.0],  # 7 padding with garbage: no error, not masked
    ]])
    valid = torch.tensor([[True, True, True, True, True, False, True, False]])
    anchors = torch.tensor([[True, False, False, True, False, True, False, True]])
    got = _run(backend, device, boxes, valid, anchors, 0.4, inclusive=True)
    assert got.tolist() == [[True, True, False, True, False, False, False, False]]


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_non_contiguous_inputs(backend, device, rng):
    boxes = random_boxes(9, 6, rng).transpose(0, 1).contiguous().transpose(0, 1)
    valid = (torch.rand(6, 9, generator=rng) < 0.8).t()
    anchors = (torch.rand(9, 12, generator=rng) < 0.3)[:, ::2]
    assert not (boxes.is_contiguous() or valid.is_contiguous() or anchors.is_contiguous())
    expected = reference.iou_neighbourhood_mask(boxes, valid, anchors, 0.3)
    assert torch.equal(_run(backend, device, boxes, valid, anchors, 0.3), expected)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_opcheck(backend, device, rng):
    op = (torch.ops.vlengine.iou_neighbourhood_mask_triton if backend == "triton"
          else torch.ops.vlengine.iou_neighbourhood_mask)
    for dtype, inclusive in ((torch.float32, False), (torch.float64, True)):
        boxes = random_boxes(3, 11, rng, dtype).to(device)
        valid, anchors = (t.to(device) for t in _flags(3, 11, rng))
        torch.library.opcheck(op, (boxes, valid, anchors, 0.4, inclusive), test_utils=opcheck_utils(backend, device))


def test_torch_compile(rng):
    fn = torch.compile(lambda b, v, a: ops.iou_neighbourhood_mask(b, v, a, 0.3), backend="aot_eager", fullgraph=True)
    boxes = random_boxes(3, 20, rng)
    valid, anchors = _flags(3, 20, rng)
    assert torch.equal(fn(boxes, valid, anchors), reference.iou_neighbourhood_mask(boxes, valid, anchors, 0.3))


# ---- bad input ----

def _good(b=2, n=3):
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(b, n, 1)
    return boxes, torch.ones(b, n, dtype=torch.bool), torch.zeros(b, n, dtype=torch.bool)


@pytest.mark.parametrize("change,error,words", [
    (lambda b, v, a: (b[0], v, a), ValueError, "boxes must have 3 dimensions"),
    (lambda b, v, a: (b[..., :3], v, a), ValueError, r"boxes must be \[B, N, 4\]"),
    (lambda b, v, a: (b.long(), v, a), TypeError, "boxes must be a floating"),
    (lambda b, v, a: (b, v.int(), a), TypeError, "valid must be a bool tensor"),
    (lambda b, v, a: (b, v[:, :2], a), ValueError, r"valid must be \[B, N\] = \[2, 3\]"),
    (lambda b, v, a: (b, v, a[:1]), ValueError, r"anchors must be \[B, N\] = \[2, 3\]"),
    (lambda b, v, a: (b, v, a.to("meta")), RuntimeError, "one device"),
])
def test_bad_shapes_dtypes_devices(change, error, words):
    with pytest.raises(error, match=words):
        ops.iou_neighbourhood_mask(*change(*_good()))


@pytest.mark.parametrize("box,words", [
    ([3.0, 0.0, 1.0, 1.0], "x2 < x1"),
    ([0.0, 0.0, 1.0, math.inf], "non-finite"),
    ([math.nan, 0.0, 1.0, 1.0], "non-finite"),
])
def test_bad_valid_box_values(box, words):
    boxes, valid, anchors = _good()
    boxes[1, 2] = torch.tensor(box)
    with pytest.raises(ValueError, match=rf"boxes\[1, 2\] has .*{words}|boxes\[1, 2\] has a {words}"):
        ops.iou_neighbourhood_mask(boxes, valid, anchors)
    valid[1, 2] = False  # the same garbage in padding is fine
    assert not ops.iou_neighbourhood_mask(boxes, valid, anchors)[1, 2]


@pytest.mark.parametrize("threshold,error", [(-0.1, ValueError), (1.5, ValueError), (math.nan, ValueError),
                                             ("0.4x", TypeError)])
def test_bad_threshold(threshold, error):
    with pytest.raises(error, match="threshold"):
        ops.iou_neighbourhood_mask(*_good(), threshold=threshold)
