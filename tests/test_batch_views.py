"""VLBatch's derived views: each equals the computation its consumers made inline before it existed,
on padded rows, text-only rows, batches without region_valid and batches without regions."""

import pytest
import torch

from vlengine.batch import FLOATING_INPUTS, IGNORE_INDEX, VLBatch


def make_batch(gen, text_only=True, with_valid=True, with_regions=True, leading_padding=False) -> VLBatch:
    b, t, r = 5, 7, 4
    lengths = torch.tensor([7, 3, 1, 5, 2])
    text_mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
    if leading_padding:  # [CLS] not at position 0: the view must find the first real token
        text_mask = text_mask.flip(1)
    fields = dict(input_ids=torch.randint(0, 50, (b, t), generator=gen), text_mask=text_mask,
                  text_only=torch.tensor([False, True, False, False, True]) if text_only else None,
                  itm_label=torch.tensor([1, 0, 1, 0, 1]), extras={"sample": torch.arange(b), "name": "x"})
    if with_regions:
        counts = torch.tensor([4, 0, 2, 1, 3])
        fields.update(region_features=torch.rand(b, r, 6, generator=gen).half(),
                      region_boxes=torch.rand(b, r, 4, generator=gen) * 10,
                      region_valid=(torch.arange(r).unsqueeze(0) < counts.unsqueeze(1)) if with_valid else None,
                      region_soft_labels=torch.rand(b, r, 3, generator=gen),
                      region_feature_targets=torch.rand(b, r, 6, generator=gen),
                      region_targets=torch.full((b, r), IGNORE_INDEX),
                      image_size=torch.full((b, 2), 20.0),
                      images=torch.rand(b, 3, 8, 8, generator=gen))
    return VLBatch(**fields)


CASES = [dict(), dict(text_only=False), dict(with_valid=False), dict(with_valid=False, text_only=False),
         dict(leading_padding=True)]


@pytest.mark.parametrize("case", CASES)
def test_views_equal_the_inline_computations_they_replace(rng, case):
    batch = make_batch(rng, **case)
    b, r = batch.region_boxes.shape[:2]
    # models (VL-BERT / InterBERT / SemVLP / CSS-BERT): [CLS] = the first real text token
    assert torch.equal(batch.cls_index, batch.text_mask.int().argmax(1))
    assert batch.cls_index.dtype == torch.int64
    assert torch.equal(batch.text_lengths, batch.text_mask.sum(1))
    # VL-BERT's region_rows and the front-end's validity
    valid = batch.region_valid if batch.region_valid is not None else torch.ones((b, r), dtype=torch.bool)
    assert torch.equal(batch.valid_regions, valid)
    has_regions = valid.any(1)
    if batch.text_only is not None:
        has_regions = has_regions & ~batch.text_only
    assert torch.equal(batch.rows_with_regions, has_regions)
    assert torch.equal(batch.image_regions, valid & has_regions.unsqueeze(1))
    # InterBERT / SemVLP image tokens and the masking policies: valid minus text-only rows
    expected = valid & ~batch.text_only.unsqueeze(1) if batch.text_only is not None else valid
    assert torch.equal(batch.image_regions, expected)
    # objectives' paired rows
    rows = ~batch.text_only if batch.text_only is not None else torch.ones(b, dtype=torch.bool)
    assert torch.equal(batch.image_rows, rows)
    # throughput: text tokens plus the regions region_valid marks
    tokens = int(batch.text_mask.sum()) + (int(batch.region_valid.sum()) if batch.region_valid is not None else 0)
    assert batch.num_tokens == tokens
    assert batch.num_regions == r


def test_views_of_a_text_only_batch(rng):
    batch = make_batch(rng, with_regions=False)
    assert batch.num_regions == 0
    assert batch.valid_regions is None and batch.image_regions is None
    assert not bool(batch.rows_with_regions.any()) and batch.rows_with_regions.shape == (5,)
    assert batch.num_tokens == int(batch.text_mask.sum()) == 18


def test_a_view_is_not_the_field_itself_when_it_combines_fields(rng):
    """Writing into a combined view must not change the batch (policies clone before editing)."""
    batch = make_batch(rng)
    regions = batch.image_regions
    regions[:] = False
    assert bool(batch.region_valid.any())
    rows = batch.image_rows
    rows[:] = False
    assert bool((~batch.text_only).any())


@pytest.mark.parametrize("dtype", [None, torch.float32])
def test_to_without_a_half_precision_dtype_keeps_stored_dtypes(rng, dtype):
    batch = make_batch(rng)
    moved = batch.to("cpu", dtype)
    for name, value in vars(batch).items():
        if torch.is_tensor(value):
            assert getattr(moved, name).dtype == value.dtype, name
            assert torch.equal(getattr(moved, name), value), name
    assert moved.region_features.dtype == torch.float16
    assert moved.extras["name"] == "x" and torch.equal(moved.extras["sample"], batch.extras["sample"])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_to_casts_the_floating_inputs_only(rng, dtype):
    """What the training loop did with its own helper: features, images and feature targets to the
    engine's dtype; boxes, image sizes, soft labels, ids, masks and labels unchanged."""
    batch = make_batch(rng)
    moved = batch.to("cpu", dtype)
    for name, value in vars(batch).items():
        if not torch.is_tensor(value):
            continue
        got = getattr(moved, name)
        if name in FLOATING_INPUTS:
            assert got.dtype == dtype and torch.equal(got, value.to(dtype)), name
        else:
            assert got.dtype == value.dtype and torch.equal(got, value), name
    assert set(FLOATING_INPUTS) == {"region_features", "images", "region_feature_targets"}
    assert moved.extras["sample"].dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_to_moves_every_tensor_to_the_device(rng):
    batch = make_batch(rng).to("cuda", torch.bfloat16)
    for name, value in vars(batch).items():
        if torch.is_tensor(value):
            assert value.is_cuda, name
    assert batch.extras["sample"].is_cuda
    assert batch.cls_index.is_cuda and batch.image_rows.is_cuda and batch.image_regions.is_cuda
