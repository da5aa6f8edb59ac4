"""The nn.Module forms of the ops give the functions' outputs and gradients, and print like torchvision's."""

import pytest
import torch
from torch import nn

import vlengine.ops as ops


def _rois(rng, n, k, size):
    xy = torch.rand(k, 2, generator=rng) * (size - 4)
    wh = 1 + torch.rand(k, 2, generator=rng) * 3
    return torch.cat([torch.randint(0, n, (k, 1), generator=rng).double(), xy, xy + wh], 1)


def test_roi_align_modules_match_the_functions(rng):
    x = torch.randn(2, 3, 11, 13, generator=rng, dtype=torch.float64, requires_grad=True)
    rois, masked = _rois(rng, 2, 5, 10), _rois(rng, 2, 3, 10)
    plain = ops.RoIAlign((3, 2), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    fused = ops.RoIAlignMasked(4, spatial_scale=0.5, sampling_ratio=-1)
    torch.testing.assert_close(plain(x, rois), ops.roi_align(x, rois, (3, 2), 0.5, 2, True), rtol=0, atol=0)
    got, want = fused(x, rois, masked), ops.roi_align_masked(x, rois, masked, 4, 0.5, -1, False)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    g = torch.randn(want.shape, generator=rng, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


def test_roi_align_repr_is_torchvisions():
    module = ops.RoIAlign((7, 7), spatial_scale=0.0625, sampling_ratio=2, aligned=False)
    assert repr(module) == "RoIAlign(output_size=(7, 7), spatial_scale=0.0625, sampling_ratio=2, aligned=False)"
    torchvision = pytest.importorskip("torchvision")
    assert repr(module) == repr(torchvision.ops.RoIAlign((7, 7), 0.0625, 2, False))
    assert repr(ops.RoIAlignMasked(7, 1.0, -1)).startswith("RoIAlignMasked(output_size=7,")


def test_mask_pixels_module_holds_fill_as_a_buffer(rng):
    images = torch.randn(2, 3, 9, 9, generator=rng)
    boxes = torch.tensor([[1, 2.0, 1.0, 5.0, 6.0], [0, 0.0, 0.0, 3.0, 2.0]])
    module = ops.MaskPixels([0.5, -1.0, 2.0])
    assert "fill" in dict(module.named_buffers()) and not list(module.parameters())
    torch.testing.assert_close(module(images, boxes), ops.mask_pixels(images, boxes, [0.5, -1.0, 2.0]))
    assert repr(module) == "MaskPixels(fill=[0.5, -1.0, 2.0], inplace=False)"
    with pytest.raises(ValueError, match="fill must be a scalar or one value per channel"):
        ops.MaskPixels(torch.zeros(2, 3))


@pytest.mark.parametrize("kind", ["infonce", "pwcl"])
def test_contrastive_module_matches_the_function(kind, rng):
    text = torch.randn(6, 5, generator=rng, dtype=torch.float64, requires_grad=True)
    image = torch.randn(6, 5, generator=rng, dtype=torch.float64, requires_grad=True)
    module = ops.ContrastiveLoss(0.2, kind=kind).double()
    torch.testing.assert_close(module(text, image), ops.contrastive_loss(text, image, 0.2, kind=kind))


def test_contrastive_temperature_is_a_parameter_only_when_learnable(rng):
    fixed, learnable = ops.ContrastiveLoss(0.07), ops.ContrastiveLoss(0.07, learnable=True)
    assert isinstance(learnable.temperature, nn.Parameter) and list(learnable.parameters())
    assert not list(fixed.parameters()) and "temperature" in dict(fixed.named_buffers())
    assert "temperature" in fixed.state_dict() and "temperature" in learnable.state_dict()
    text, image = torch.randn(4, 3, generator=rng), torch.randn(4, 3, generator=rng)
    learnable(text, image).backward()
    expected_grad = torch.autograd.grad(ops.contrastive_loss(text, image, learnable.temperature), learnable.temperature)
    torch.testing.assert_close(learnable.temperature.grad, expected_grad[0])
    assert repr(fixed) == "ContrastiveLoss(temperature=0.07, kind='infonce', normalize=True, reduction='mean', " \
                          "learnable=False)"
    with pytest.raises(ValueError, match="temperature must be positive"):
        ops.ContrastiveLoss(0.0)
