"""Conditional masking for ITM negatives, and each paper's masking preset."""

import pytest
import torch
from masking_batches import VOCAB, region_batch

from vlengine.batch import IGNORE_INDEX
from vlengine.data.masking import PAPERS, ConditionalMasking, MLMMasking, RoIMasking, masking_for


@pytest.mark.parametrize("paper", PAPERS)
def test_negatives_are_masked_like_positives_but_get_no_labels(paper, rng):
    # Unmasked negatives would give the pair label away ("no [MASK] token" = random caption).
    batch = region_batch(32, 16, 12, rng)
    negative = batch.itm_label == 0
    assert negative.any() and (~negative).any()
    out = masking_for(paper, VOCAB)(batch, torch.Generator().manual_seed(3))
    plain = masking_for(paper, VOCAB)(batch.replace(itm_label=None), torch.Generator().manual_seed(3))
    assert torch.equal(out.input_ids, plain.input_ids)
    assert not torch.equal(out.input_ids[negative], batch.input_ids[negative])
    assert (out.mlm_labels[negative] == IGNORE_INDEX).all()
    assert torch.equal(out.mlm_labels[~negative], plain.mlm_labels[~negative])
    assert (out.mlm_labels[~negative] != IGNORE_INDEX).any()
    if out.region_masked is not None:
        assert torch.equal(out.region_masked, plain.region_masked)
        assert out.region_masked[negative].any()
        assert (out.region_targets[negative] == IGNORE_INDEX).all()
        assert torch.equal(out.region_targets[~negative], plain.region_targets[~negative])
        assert torch.equal(out.region_features, plain.region_features)
    if out.masked_rois is not None:
        assert torch.equal(out.masked_rois, plain.masked_rois)


def test_policies_run_in_order_and_accept_one_policy(rng):
    batch = region_batch(8, 16, 6, rng).replace(itm_label=None)
    one = ConditionalMasking(MLMMasking(VOCAB))(batch, torch.Generator().manual_seed(0))
    direct = MLMMasking(VOCAB)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(one.input_ids, direct.input_ids)
    both = ConditionalMasking((MLMMasking(VOCAB), RoIMasking()))(batch, torch.Generator().manual_seed(0))
    assert torch.equal(both.input_ids, direct.input_ids) and both.region_masked is not None


def test_presets_are_reproducible(rng):
    batch = region_batch(8, 16, 10, rng)
    for paper in PAPERS:
        a = masking_for(paper, VOCAB)(batch, torch.Generator().manual_seed(1))
        b = masking_for(paper, VOCAB)(batch, torch.Generator().manual_seed(1))
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.mlm_labels, b.mlm_labels)


def test_bad_arguments(rng):
    with pytest.raises(ValueError, match="unknown paper 'uniter'"):
        masking_for("uniter", VOCAB)
    with pytest.raises(TypeError, match="every policy must be callable"):
        ConditionalMasking((MLMMasking(VOCAB), 3))
    batch = region_batch(4, 16, 6, rng)
    with pytest.raises(TypeError, match="batch.itm_label must be torch.int64"):
        masking_for("semvlp", VOCAB)(batch.replace(itm_label=batch.itm_label.bool()))


def test_in_place_region_masking_masks_negatives_without_labels(rng):
    from vlengine.data.masking import IoURegionMasking, SpanMasking

    batch = region_batch(16, 16, 12, rng)
    original = batch.region_features.clone()
    negative = batch.itm_label == 0
    policy = ConditionalMasking((SpanMasking(VOCAB), IoURegionMasking(inplace_features=True)))
    out = policy(batch, torch.Generator().manual_seed(0))
    assert out.region_masked[negative].any()
    assert (out.region_features[out.region_masked] == 0).all()
    assert torch.equal(out.region_features[~out.region_masked], original[~out.region_masked])
    assert (out.region_targets[negative] == IGNORE_INDEX).all()
