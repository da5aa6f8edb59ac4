"""vlengine.ops.sample_region_mask: InterBERT's anchor draw plus IoU neighbourhood, reproducible and unbiased."""

import pytest
import torch
from box_samples import backend_params, random_boxes

import vlengine.ops as ops

BACKENDS = backend_params("iou_neighbourhood_mask")


def _inputs(rng, b=16, n=36):
    boxes = random_boxes(b, n, rng)
    valid = torch.rand(b, n, generator=rng) < 0.85
    return boxes, valid


def test_same_seed_same_mask_different_seed_different_mask(rng):
    boxes, valid = _inputs(rng)
    draw = lambda seed: ops.sample_region_mask(boxes, valid, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_backends_agree_for_one_seed(backend, device, rng):
    boxes, valid = _inputs(rng, b=4, n=20)
    ref_masked, ref_anchors = ops.sample_region_mask(boxes, valid, generator=torch.Generator().manual_seed(3),
                                                     return_anchors=True, backend="reference")
    masked, anchors = ops.sample_region_mask(boxes.to(device), valid.to(device), return_anchors=True,
                                             generator=torch.Generator(device=device).manual_seed(3), backend=backend)
    masked, anchors = masked.cpu(), anchors.cpu()
    if device == "cpu":  # the same generator stream draws the same anchors
        assert torch.equal(anchors, ref_anchors) and torch.equal(masked, ref_masked)
    assert torch.equal(masked, ops.iou_neighbourhood_mask(boxes, valid, anchors, backend="reference"))


def test_mask_is_the_neighbourhood_of_valid_anchors(rng):
    boxes, valid = _inputs(rng)
    for preset in (ops.INTERBERT_PAPER, ops.INTERBERT_RELEASED):
        masked, anchors = ops.sample_region_mask(boxes, valid, generator=rng, return_anchors=True, **preset.kwargs())
        assert not (anchors & ~valid).any() and not (masked & ~valid).any()
        assert (masked | ~anchors).all()
        expected = ops.iou_neighbourhood_mask(boxes, valid, anchors, preset.threshold, preset.inclusive)
        assert torch.equal(masked, expected)


@pytest.mark.parametrize("preset", [ops.INTERBERT_PAPER, ops.INTERBERT_RELEASED], ids=["paper", "released"])
def test_anchor_rate_within_three_sigma(preset, rng):
    boxes, valid = _inputs(rng, b=64, n=50)
    total, count = 0, 0
    gen = torch.Generator().manual_seed(11)
    for _ in range(20):
        _, anchors = ops.sample_region_mask(boxes, valid, generator=gen, return_anchors=True, **preset.kwargs())
        total += int(valid.sum())
        count += int(anchors.sum())
    p = preset.anchor_prob
    sigma = (p * (1 - p) / total) ** 0.5
    assert abs(count / total - p) < 3 * sigma


def test_presets_are_the_documented_settings():
    assert ops.INTERBERT_PAPER.kwargs() == {"anchor_prob": 0.15, "threshold": 0.4, "inclusive": False}
    assert ops.INTERBERT_RELEASED.kwargs() == {"anchor_prob": 0.1, "threshold": 0.4, "inclusive": True}


def test_no_valid_regions_and_zero_probability(rng):
    boxes, valid = _inputs(rng, b=3, n=5)
    assert not ops.sample_region_mask(boxes, torch.zeros_like(valid), generator=rng).any()
    assert not ops.sample_region_mask(boxes, valid, anchor_prob=0.0, generator=rng).any()
    assert torch.equal(ops.sample_region_mask(boxes, valid, anchor_prob=1.0, generator=rng), valid)


@pytest.mark.parametrize("kwargs,error,words", [
    ({"anchor_prob": 1.5}, ValueError, "anchor_prob must be a probability"),
    ({"anchor_prob": None}, TypeError, "anchor_prob must be a number"),
    ({"threshold": 2.0}, ValueError, "threshold must be an IoU"),
    ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
])
def test_bad_arguments(kwargs, error, words, rng):
    boxes, valid = _inputs(rng, b=2, n=3)
    with pytest.raises(error, match=words):
        ops.sample_region_mask(boxes, valid, **kwargs)


def test_generator_on_another_device(rng):
    boxes, valid = _inputs(rng, b=2, n=3)
    with pytest.raises(RuntimeError, match="generator is on cpu but the tensors are on meta"):
        ops.sample_region_mask(boxes.to("meta"), valid.to("meta"), generator=rng)
