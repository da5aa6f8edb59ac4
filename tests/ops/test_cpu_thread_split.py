"""The CPU kernels split a range across threads only when each thread gets enough work
(csrc/include/vlengine/cpu_grain.h): both paths, inline and split, must give the reference's
result. Each case is sized so that at two threads the range is cut into two or more chunks."""

import pytest
import torch
from box_samples import random_boxes

import vlengine.ops as ops
from vlengine.ops import reference


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _both_paths(run):
    """run() with one thread (everything inline) and with two (split where large enough)."""
    torch.set_num_threads(1)
    single = run()
    torch.set_num_threads(2)
    return single, run()


# cpu_grain.h: a chunk holds >= 2^23 element operations; the large cases below cut into two or more
@pytest.mark.parametrize("b, n, anchor_p", [(4, 30, 0.15), (256, 200, 0.9)])   # 16 N x anchors a image: inline / split
def test_iou_neighbourhood_mask_inline_and_split(two_threads, b, n, anchor_p, rng):
    boxes = random_boxes(b, n, rng)
    valid = torch.rand(b, n, generator=rng) < 0.9
    anchors = torch.rand(b, n, generator=rng) < anchor_p
    expected = reference.iou_neighbourhood_mask(boxes, valid, anchors, 0.4, False)
    for out in _both_paths(lambda: ops.iou_neighbourhood_mask(boxes, valid, anchors, 0.4, False, backend="cpu")):
        assert torch.equal(out, expected)


@pytest.mark.parametrize("b, n", [(2, 20), (128, 100)])
def test_box_iou_batched_inline_and_split(two_threads, b, n, rng):
    boxes1, boxes2 = random_boxes(b, n, rng), random_boxes(b, n, rng)
    expected = reference.box_iou_batched(boxes1, boxes2)
    for out in _both_paths(lambda: ops.box_iou_batched(boxes1, boxes2, backend="cpu")):
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("images, boxes_per_image", [(2, 2), (4, 24)])   # 24 full boxes: ~1.5M writes a plane
def test_mask_pixels_inline_and_split(two_threads, images, boxes_per_image, rng):
    x = torch.randn(images, 3, 256, 256, generator=rng)
    rows = []
    for i in range(images):
        for _ in range(boxes_per_image):
            x1, y1 = torch.randint(0, 8, (2,), generator=rng).tolist()
            rows.append([i, x1, y1, 255 - x1, 255 - y1])
    boxes = torch.tensor(rows, dtype=torch.float32)
    expected = reference.mask_pixels(x, boxes, torch.tensor(0.5))
    for out in _both_paths(lambda: ops.mask_pixels(x, boxes, 0.5, backend="cpu")):
        assert torch.equal(out, expected)


@pytest.mark.parametrize("channels, rois", [(8, 4), (384, 64)])   # large: K split forward, C split backward
def test_roi_align_masked_inline_and_split(two_threads, channels, rois, rng):
    feature_map = torch.randn(2, channels, 25, 38, generator=rng, dtype=torch.float64)
    boxes = random_boxes(1, rois, rng, torch.float64, special=False)[0] * 8
    rois_t = torch.cat([torch.randint(0, 2, (rois, 1), generator=rng).double(), boxes], dim=1)
    masked = rois_t[: rois // 4]
    args = ((7, 7), 1.0 / 16, 2, False)
    expected = reference.roi_align_masked(feature_map, rois_t, masked, *args)
    grad_out = torch.randn(expected.shape, generator=rng, dtype=torch.float64)

    def run():
        x = feature_map.clone().requires_grad_(True)
        out = ops.roi_align_masked(x, rois_t, masked, *args, backend="cpu")
        out.backward(grad_out)
        return out.detach(), x.grad

    ref_x = feature_map.clone().requires_grad_(True)
    reference.roi_align_masked(ref_x, rois_t, masked, *args).backward(grad_out)
    for out, grad in _both_paths(run):
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(grad, ref_x.grad)


@pytest.mark.parametrize("batch", [64, 4096])   # 4096: full 512 x 4096 logit tiles, two row blocks each
def test_contrastive_loss_inline_and_split(two_threads, batch, rng):
    text = torch.randn(batch, 16, generator=rng, dtype=torch.float64)
    image = torch.randn(batch, 16, generator=rng, dtype=torch.float64)
    expected = reference.contrastive_loss(text, image, 0.07, "infonce")
    for out in _both_paths(lambda: ops.contrastive_loss(text, image, 0.07, "infonce", backend="cpu")):
        torch.testing.assert_close(out, expected)
