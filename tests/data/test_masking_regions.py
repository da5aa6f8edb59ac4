"""Region masking policies: VL-BERT RoI masking, InterBERT IoU-neighbourhood MRM, SemVLP MOP."""

import pytest
import torch
from masking_batches import region_batch, within_three_sigma

import vlengine.ops as ops
from vlengine.batch import IGNORE_INDEX
from vlengine.data.masking import IoURegionMasking, ObjectPredictionMasking, RoIMasking


def _draws(policy, batch, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [policy(batch, gen) for _ in range(n)]


# ---- VL-BERT RoI masking ----

def test_roi_rates_whole_image_box_and_padding(rng):
    batch = region_batch(64, 8, 20, rng)
    eligible = batch.region_valid.clone()
    eligible[:, 0] = False  # the whole-image box
    n_sel = n_masked = 0
    for out in _draws(RoIMasking(), batch, 20):
        selected = out.region_targets != IGNORE_INDEX
        assert not (selected & ~eligible).any() and not (out.region_masked & ~selected).any()
        n_sel += int(selected.sum())
        n_masked += int(out.region_masked.sum())
    assert within_three_sigma(n_sel, int(eligible.sum()) * 20, 0.15)
    assert within_three_sigma(n_masked, n_sel, 0.9)


def test_roi_soft_and_hard_targets(rng):
    batch = region_batch(16, 8, 12, rng)
    soft = RoIMasking(targets="soft")(batch, torch.Generator().manual_seed(4))
    selected = soft.region_targets != IGNORE_INDEX
    assert torch.equal(soft.region_targets[selected], batch.region_soft_labels.argmax(-1)[selected])
    hard = RoIMasking(targets="hard")(batch, torch.Generator().manual_seed(4))
    assert torch.equal(hard.region_masked, soft.region_masked)  # the same draws
    assert torch.equal(hard.region_targets[selected], batch.region_labels[selected])


def test_roi_masked_rois_feed_mask_pixels(rng):
    batch = region_batch(6, 8, 10, rng)
    out = RoIMasking(select_prob=0.5, whole_image_index=None)(batch, torch.Generator().manual_seed(0))
    index = out.region_masked.nonzero()
    assert out.masked_rois.shape == (len(index), 5)
    assert torch.equal(out.masked_rois[:, 0].long(), index[:, 0])
    assert torch.equal(out.masked_rois[:, 1:], batch.region_boxes[index[:, 0], index[:, 1]])
    images = torch.ones(6, 3, 96, 96)
    masked = ops.mask_pixels(images, out.masked_rois)
    for (img, reg), box in zip(index.tolist(), out.masked_rois.tolist()):
        x1, y1 = int(box[1]), int(box[2])
        assert (masked[img, :, min(y1, 95), min(x1, 95)] == 0).all()
    assert torch.equal(batch.region_features, out.region_features)  # features untouched by default


def test_roi_zero_features_option(rng):
    batch = region_batch(8, 8, 10, rng)
    out = RoIMasking(zero_features=True, select_prob=0.5)(batch, torch.Generator().manual_seed(0))
    assert (out.region_features[out.region_masked] == 0).all()
    keep = ~out.region_masked
    assert torch.equal(out.region_features[keep], batch.region_features[keep])


def test_roi_text_only_rows_get_no_region_masking(rng):
    batch = region_batch(16, 8, 10, rng)
    text_only = torch.arange(16) % 2 == 0
    out = RoIMasking(select_prob=1.0)(batch.replace(text_only=text_only), torch.Generator().manual_seed(0))
    assert not out.region_masked[text_only].any()
    assert (out.region_targets[text_only] == IGNORE_INDEX).all()


# ---- InterBERT MRM ----

@pytest.mark.parametrize("preset", [ops.INTERBERT_PAPER, ops.INTERBERT_RELEASED], ids=["paper", "released"])
def test_iou_region_masking_is_sample_region_mask(preset, rng):
    batch = region_batch(16, 8, 24, rng)
    out = IoURegionMasking(preset)(batch, torch.Generator().manual_seed(9))
    expected = ops.sample_region_mask(batch.region_boxes, batch.region_valid,
                                      generator=torch.Generator().manual_seed(9), **preset.kwargs())
    assert torch.equal(out.region_masked, expected)
    assert (out.region_features[expected] == 0).all()
    assert torch.equal(out.region_features[~expected], batch.region_features[~expected])
    assert torch.equal(out.region_targets[expected], batch.region_labels[expected])
    assert (out.region_targets[~expected] == IGNORE_INDEX).all()
    assert (batch.region_features != 0).all()  # the input batch is not modified


def test_iou_region_masking_masks_at_least_the_anchor_rate(rng):
    batch = region_batch(64, 8, 30, rng)
    total = int(batch.region_valid.sum()) * 10
    count = sum(int(out.region_masked.sum()) for out in _draws(IoURegionMasking(), batch, 10))
    assert count / total > 0.15  # anchors (15%) plus their neighbours


# ---- SemVLP masked object prediction ----

def test_object_prediction(rng):
    batch = region_batch(64, 8, 20, rng)
    n = 0
    for out in _draws(ObjectPredictionMasking(), batch, 20):
        m = out.region_masked
        assert not (m & ~batch.region_valid).any()
        assert (out.region_features[m] == 0).all()
        assert torch.equal(out.region_features[~m], batch.region_features[~m])
        assert out.region_feature_targets is batch.region_features
        assert torch.equal(out.region_targets[m], batch.region_labels[m])
        assert (out.region_targets[~m] == IGNORE_INDEX).all()
        n += int(m.sum())
    assert within_three_sigma(n, int(batch.region_valid.sum()) * 20, 0.15)
    unlabeled = ObjectPredictionMasking()(batch.replace(region_labels=None), torch.Generator())
    assert (unlabeled.region_targets == IGNORE_INDEX).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_region_policies_on_the_gpu(rng):
    batch = region_batch(32, 8, 36, rng).to("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    for policy in (RoIMasking(), IoURegionMasking(), ObjectPredictionMasking()):
        out = policy(batch, gen)
        assert out.region_masked.is_cuda and not (out.region_masked & ~batch.region_valid).any()


# ---- bad input ----

def test_bad_region_batches(rng):
    batch = region_batch(4, 8, 6, rng)
    with pytest.raises(ValueError, match="batch.region_soft_labels is required"):
        RoIMasking()(batch.replace(region_soft_labels=None))
    with pytest.raises(ValueError, match="batch.region_boxes is required"):
        IoURegionMasking()(batch.replace(region_boxes=None))
    with pytest.raises(TypeError, match="batch.region_valid must be torch.bool"):
        ObjectPredictionMasking()(batch.replace(region_valid=batch.region_valid.long()))
    with pytest.raises(ValueError, match=r"batch.region_valid must have shape \[4, 6\]"):
        RoIMasking()(batch.replace(region_valid=batch.region_valid[:, :3]))
    with pytest.raises(ValueError, match="the batch has no regions"):
        ObjectPredictionMasking()(batch.replace(region_features=None, region_boxes=None))
    with pytest.raises(RuntimeError, match="batch.region_boxes is on meta"):
        IoURegionMasking()(batch.replace(region_boxes=batch.region_boxes.to("meta")))
    bad_box = batch.region_boxes.clone()
    bad_box[0, 0] = torch.tensor([5.0, 5.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"boxes\[0, 0\] has x2 < x1"):
        IoURegionMasking()(batch.replace(region_boxes=bad_box))
    with pytest.raises(ValueError, match="targets must be 'soft' or 'hard'"):
        RoIMasking(targets="argmax")
    with pytest.raises(ValueError, match="select_prob must be a probability"):
        RoIMasking(select_prob=-0.1)


def test_iou_region_masking_in_place(rng):
    batch = region_batch(8, 8, 16, rng)
    expected = IoURegionMasking()(batch, torch.Generator().manual_seed(2))
    features = batch.region_features.clone()
    out = IoURegionMasking(inplace_features=True)(batch.replace(region_features=features),
                                                  torch.Generator().manual_seed(2))
    assert out.region_features is features  # zeroed in the batch's own tensor
    assert torch.equal(features, expected.region_features)
    assert torch.equal(out.region_masked, expected.region_masked)
