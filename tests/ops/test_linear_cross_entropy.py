"""vlengine.ops.fused_linear_cross_entropy against the materialised reference (vlengine.ops.reference)."""

import pytest
import torch
import torch.nn.functional as F

import vlengine.ops as ops
from vlengine.ops.reference import linear_cross_entropy as reference

# Loss and gradient tolerances per dtype: the chunks accumulate in float32 (float64 for float64)
# like the reference; bf16 differs by the rounding of the bf16 matmul and of the returned gradients.
TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6),
              torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def _inputs(rng, m, h, v, dtype, bias=True, ignored=0.0):
    hidden = torch.randn(m, h, generator=rng).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=rng) / h ** 0.5).to(dtype).requires_grad_()
    b = (0.1 * torch.randn(v, generator=rng)).to(dtype).requires_grad_() if bias else None
    labels = torch.randint(0, v, (m,), generator=rng)
    labels[torch.rand(m, generator=rng) < ignored] = -100
    return hidden, weight, b, labels


def _loss_and_grads(fn, hidden, weight, bias, labels, **kwargs):
    leaves = [t for t in (hidden, weight, bias) if t is not None]
    loss = fn(hidden, weight, bias, labels, **kwargs)
    return (loss, *torch.autograd.grad(loss, leaves))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("m,h,v,chunk", [(97, 33, 341, 16), (1, 8, 5, 1024), (64, 16, 1025, 64), (13, 7, 11, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_reference(dtype, m, h, v, chunk, bias, rng):
    args = _inputs(rng, m, h, v, dtype, bias=bias, ignored=0.3)
    got = _loss_and_grads(ops.fused_linear_cross_entropy, *args, chunk_size=chunk)
    want = _loss_and_grads(reference, *args)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        torch.testing.assert_close(g, w, **TOLERANCES[dtype])


def test_plain_labels_equal_f_cross_entropy(rng):
    hidden, weight, bias, labels = _inputs(rng, 41, 12, 50, torch.float64)
    got = ops.fused_linear_cross_entropy(hidden, weight, bias, labels, chunk_size=7)
    torch.testing.assert_close(got, F.cross_entropy(hidden @ weight.T + bias, labels))


def test_ignored_rows_do_not_count(rng):
    hidden, weight, bias, labels = _inputs(rng, 20, 6, 9, torch.float64)
    labels[::3] = -1
    kept = labels != -1
    got = ops.fused_linear_cross_entropy(hidden, weight, bias, labels, chunk_size=4, ignore_index=-1)
    want = F.cross_entropy(hidden[kept] @ weight.T + bias, labels[kept])
    torch.testing.assert_close(got, want)
    grad = torch.autograd.grad(got, hidden)[0]
    assert torch.all(grad[~kept] == 0)


def test_all_rows_ignored_gives_zero_loss_and_gradients(rng):
    hidden, weight, bias, labels = _inputs(rng, 9, 4, 6, torch.float32)
    labels.fill_(-100)
    loss, *grads = _loss_and_grads(ops.fused_linear_cross_entropy, hidden, weight, bias, labels, chunk_size=4)
    ref_loss, *_ = _loss_and_grads(reference, hidden, weight, bias, labels)
    assert loss.item() == 0.0 and ref_loss.item() == 0.0
    assert all(torch.all(g == 0) for g in grads)


def test_gradcheck_float64(rng):
    hidden, weight, bias, labels = _inputs(rng, 7, 5, 6, torch.float64, ignored=0.3)
    labels[0] = 2  # at least one kept row
    assert torch.autograd.gradcheck(
        lambda h, w, b: ops.fused_linear_cross_entropy(h, w, b, labels, chunk_size=3), (hidden, weight, bias))


def test_upstream_gradient_scales_every_gradient(rng):
    hidden, weight, bias, labels = _inputs(rng, 10, 4, 7, torch.float64, ignored=0.2)
    ones = _loss_and_grads(ops.fused_linear_cross_entropy, hidden, weight, bias, labels, chunk_size=3)
    scaled = torch.autograd.grad(-2.5 * ops.fused_linear_cross_entropy(hidden, weight, bias, labels, chunk_size=3),
                                 (hidden, weight, bias))
    for a, b in zip(ones[1:], scaled):
        torch.testing.assert_close(b, -2.5 * a)


@pytest.mark.parametrize("change,error,words", [
    (dict(hidden=torch.randn(4, 5, 2)), ValueError, "hidden [M, H] and weight [V, H] must agree"),
    (dict(weight=torch.randn(9, 5)), ValueError, "must agree"),
    (dict(bias=torch.randn(8)), ValueError, "bias must be [V] = [9]"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), ValueError, "labels must be [4]"),
    (dict(labels=torch.zeros(4)), TypeError, "labels must be an integer tensor"),
    (dict(labels=torch.tensor([0, 9, 1, 2])), ValueError, "labels[1] = 9 is not a class in [0, 9)"),
    (dict(labels=torch.tensor([0, -3, 1, 2])), ValueError, "labels[1] = -3"),
    (dict(hidden=torch.zeros(4, 6, dtype=torch.long)), TypeError, "hidden must be a floating-point tensor"),
    (dict(weight=[[1.0]]), TypeError, "weight must be a torch.Tensor"),
    (dict(chunk_size=0), ValueError, "chunk_size must be >= 1"),
])
def test_bad_input_names_the_argument(change, error, words):
    args = dict(hidden=torch.randn(4, 6), weight=torch.randn(9, 6), bias=torch.randn(9),
                labels=torch.tensor([0, 8, -100, 3]), chunk_size=2)
    args.update(change)
    with pytest.raises(error, match="fused_linear_cross_entropy: .*" + __import__("re").escape(words)):
        ops.fused_linear_cross_entropy(**args)


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="no rows"):
        ops.fused_linear_cross_entropy(torch.randn(0, 4), torch.randn(5, 4), None, torch.zeros(0, dtype=torch.long))
