"""The end-to-end visual front-end: torchvision-compatible ResNet C4, masking modes, VL-BERT on raw images."""

import pytest
import torch
import torchvision

from vlengine.models import VLBert, VLConfig
from vlengine.models.visual import Res5Head, ResNetC4, VisualFrontEnd, load_torchvision_resnet, resnet_c4_frontend


@pytest.fixture
def torchvision_resnet50():
    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval()
    with torch.no_grad():   # non-trivial BatchNorm statistics, so a wrong BN mapping would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net


def test_trunk_and_head_load_torchvision_weights_and_match(torchvision_resnet50, tmp_path):
    tv = torchvision_resnet50
    torch.save(tv.state_dict(), tmp_path / "resnet50.pth")
    trunk, head = ResNetC4(50), Res5Head(50, dilation=2)
    load_torchvision_resnet(trunk, head, tmp_path / "resnet50.pth")
    tv, trunk, head = tv.double(), trunk.double().eval(), head.double().eval()
    x = torch.randn(1, 3, 64, 80, dtype=torch.float64)
    with torch.no_grad():
        c4 = tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x)))))))
        torch.testing.assert_close(trunk(x), c4)
        assert c4.shape[-2:] == (4, 5)          # stride 16
        # res5 at stride 1 with dilation 2 in every block (Detectron's C4 head): torchvision's layer4
        # with the same weights, its strides removed and its 3x3 convolutions dilated, is the same function
        rois = torch.randn(2, 1024, 14, 14, dtype=torch.float64)
        layer4 = tv.layer4
        layer4[0].conv2.stride, layer4[0].downsample[0].stride = (1, 1), (1, 1)
        for block in layer4:
            block.conv2.dilation, block.conv2.padding = (2, 2), (2, 2)
        torch.testing.assert_close(head(rois), layer4(rois).mean(dim=(2, 3)))
        assert head(rois).shape == (2, 2048)


def test_wrong_weights_are_reported(torchvision_resnet50):
    with pytest.raises(ValueError, match="wrong depth|missing"):
        load_torchvision_resnet(ResNetC4(101), Res5Head(101), torchvision_resnet50.state_dict())
    with pytest.raises(ValueError, match="do not exist"):
        load_torchvision_resnet(ResNetC4(50), None, "/nonexistent/resnet.pth")
    with pytest.raises(ValueError, match="depth"):
        ResNetC4(34)


def test_freezing_options():
    trunk = ResNetC4(50, freeze_stem=True, freeze_res2=True)
    frozen = {n for n, p in trunk.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in trunk.named_parameters() if n.startswith(("conv1", "layer1"))}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())   # frozen BN has no params
    trainable = ResNetC4(50, freeze_stem=False, freeze_res2=False, frozen_bn=False)
    assert all(p.requires_grad for p in trainable.parameters())


def _tiny_frontend(mask_mode, feature_mask_margin=0):
    """A cheap stride-16 trunk (each cell sees its own 16 x 16 pixels only) and head: the front-end takes
    any such modules."""
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.ReLU())
    head = torch.nn.Sequential(torch.nn.Conv2d(8, 32, 3, padding=1), torch.nn.ReLU())
    return VisualFrontEnd(trunk, head, mask_mode=mask_mode, feature_mask_margin=feature_mask_margin)


def _image_batch(gen):
    images = torch.randn(2, 3, 96, 128, generator=gen)
    boxes = torch.tensor([[[5.0, 5, 40, 30], [50, 20, 120, 90], [0, 0, 30, 95]],
                          [[10, 10, 60, 50], [70, 30, 127, 80], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    masked = torch.tensor([[True, False, False], [False, True, False]])
    return images, boxes, valid, masked, torch.tensor([[96.0, 128.0]] * 2)


def test_pixel_masking_modes_agree_and_hide_masked_pixels(rng):
    images, boxes, valid, masked, size = _image_batch(rng)
    fused = _tiny_frontend("pixels")
    plain = _tiny_frontend("pixels_python")
    a, wa = fused(images, boxes, valid, masked, size)
    b, wb = plain(images, boxes, valid, masked, size)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(wa, wb)
    assert a.shape == (2, 3, 32) and wa.shape == (2, 32) and a[1, 2].abs().max() == 0
    # pixels inside a masked box reach no feature, not even the whole-image one
    changed = images.clone()
    changed[0, :, 5:31, 5:41] = torch.randn(3, 26, 36)
    c, wc = fused(changed, boxes, valid, masked, size)
    torch.testing.assert_close(c, a)
    torch.testing.assert_close(wc, wa)
    unmasked, _ = fused(changed, boxes, valid, torch.zeros_like(masked), size)
    assert (unmasked - a).abs().max() > 0


def test_feature_map_masking_zeroes_cells_on_c4(rng):
    images, boxes, valid, masked, size = _image_batch(rng)
    fe = _tiny_frontend("feature_map")
    out, whole = fe(images, boxes, valid, masked, size)
    none, whole_none = _tiny_frontend("none")(images, boxes, valid, masked, size)
    assert (whole - whole_none).abs().max() > 0 and torch.isfinite(out).all()


def test_feature_mask_margin_hides_the_ring_of_cells_around_a_masked_box(rng):
    """Box (5, 5, 40, 30) covers C4 cells x 0..2, y 0..1; one cell of margin adds x 3 and y 2. Pixels of
    cell (y 2, x 3) then reach no feature (the whole image and the overlapping RoI read it without)."""
    images, boxes, valid, masked, size = _image_batch(rng)
    changed = images.clone()
    changed[0, :, 32:48, 48:64] = torch.randn(3, 16, 16, generator=rng)
    for margin, hidden in ((0, False), (1, True)):
        fe = _tiny_frontend("feature_map", feature_mask_margin=margin)
        out, whole = fe(images, boxes, valid, masked, size)
        out_changed, whole_changed = fe(changed, boxes, valid, masked, size)
        same = torch.equal(out, out_changed) and torch.equal(whole, whole_changed)
        assert same == hidden, f"margin {margin}"
    # the margin is only for the C4-map mode: the other modes ignore it, a negative one is refused
    torch.testing.assert_close(_tiny_frontend("pixels", 2)(images, boxes, valid, masked, size)[1],
                               _tiny_frontend("pixels")(images, boxes, valid, masked, size)[1])
    with pytest.raises(ValueError, match="feature_mask_margin"):
        _tiny_frontend("feature_map", -1)


def test_tiny_trunk_strides():
    """Stride 16 is VL-BERT's C4; stride 8 leaves res4 unstrided, with the same parameters."""
    from vlengine.models.visual import TinyC4, tiny_c4_frontend

    images = torch.randn(2, 3, 64, 96)
    assert TinyC4(4)(images).shape == (2, 16, 4, 6)
    assert TinyC4(4, stride=8)(images).shape == (2, 16, 8, 12)
    coarse, fine = tiny_c4_frontend(4, 16), tiny_c4_frontend(4, 16, stride=8)
    assert (coarse.spatial_scale, fine.spatial_scale) == (1 / 16, 1 / 8)
    assert {k: v.shape for k, v in coarse.state_dict().items()} == {k: v.shape for k, v in fine.state_dict().items()}
    with pytest.raises(ValueError, match="stride must be one of"):
        TinyC4(4, stride=4)


def test_frontend_bad_input(rng):
    images, boxes, valid, masked, size = _image_batch(rng)
    fe = _tiny_frontend("pixels")
    with pytest.raises(ValueError, match="images must be"):
        fe(images[0], boxes, valid, masked, size)
    with pytest.raises(ValueError, match="must match"):
        fe(images, boxes[:1], valid, masked, size)
    with pytest.raises(ValueError, match="mask_mode"):
        VisualFrontEnd(torch.nn.Identity(), torch.nn.Identity(), mask_mode="blur")


def test_vlbert_end_to_end_on_images(make_batch, rng):
    """Raw images -> front-end -> VL-BERT -> losses -> gradients reach the trainable backbone stages."""
    config = VLConfig.tiny(region_feature_size=2048)
    frontend = resnet_c4_frontend(50)
    model = VLBert(config, visual=frontend)
    batch = make_batch(config, batch=2, regions=3)
    images = torch.randn(2, 3, 120, 160, generator=rng)
    batch = batch.replace(region_features=None, images=images)
    out = model(batch)
    (out.text.sum() + out.regions.sum()).backward()
    assert frontend.trunk.layer3[0].conv1.weight.grad is not None        # res4 trains
    assert frontend.head.layer4[0].conv2.weight.grad is not None         # res5 trains
    assert frontend.trunk.conv1.weight.grad is None                      # stem frozen
    with pytest.raises(ValueError, match="without a visual front-end"):
        VLBert(config)(batch)


def test_computed_masked_region_embedding_keeps_the_front_ends_features(make_batch, rng):
    """VL-BERT's released end-to-end rule: with raw pixels masked no learned vector replaces the masked RoI;
    it keeps what the front-end computed from the masked image. Without a front-end it is refused."""
    config = VLConfig.tiny(region_feature_size=32, masked_region_embedding="computed")
    model = VLBert(config, visual=_tiny_frontend("pixels")).eval()
    assert not any("mask_region" in name for name, _ in model.named_parameters())
    batch = make_batch(config, batch=2, regions=3)
    images, boxes, valid, masked, size = _image_batch(rng)
    batch = batch.replace(region_features=None, images=images, region_boxes=boxes, region_valid=valid,
                          region_masked=masked, image_size=size)
    features, _ = model.visual(images, boxes, valid, masked, size)
    embedded = model.region_projection(features, boxes, size)
    seen = []
    model.visual_ln_region.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model(batch)
    torch.testing.assert_close(seen[0][masked], embedded[masked])
    with pytest.raises(ValueError, match="'computed' .* no front-end"):
        VLBert(config)
