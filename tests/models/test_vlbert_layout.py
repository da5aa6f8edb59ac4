"""VL-BERT's sequence layout: invariances, packing, masking and the special embeddings."""

import pytest
import torch

from vlengine.models import VLBert, VLConfig


def _config(**kw):
    return VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0, visual_ln_init=1.0, **kw)


def _model(**kw):
    torch.manual_seed(0)
    return VLBert(_config(**kw)).eval()


def test_region_permutation_permutes_region_outputs_and_keeps_text(make_batch):
    model = _model()
    batch = make_batch(model.config, region_counts=[6, 6, 6])
    perm = torch.randperm(6)
    permuted = batch.replace(region_features=batch.region_features[:, perm], region_boxes=batch.region_boxes[:, perm],
                             region_valid=batch.region_valid[:, perm], region_masked=batch.region_masked[:, perm])
    with torch.no_grad():
        a, b = model(batch), model(permuted)
    torch.testing.assert_close(b.regions, a.regions[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.text, a.text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.pooled, a.pooled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("unpad,pack,attention", [(True, True, "sdpa"), (False, True, "sdpa"),
                                                  (False, False, "eager"), (True, False, "sdpa")])
def test_padding_changes_no_real_output(make_batch, unpad, pack, attention):
    model = _model(unpad=unpad, pack=pack, attention=attention)
    batch = make_batch(model.config)
    b, t, r = batch.batch_size, batch.input_ids.shape[1], batch.region_boxes.shape[1]
    # widen text by 4 and regions by 3 padding entries holding garbage
    pad_ids = torch.randint(0, model.config.vocab_size, (b, 4))
    padded = batch.replace(
        input_ids=torch.cat((batch.input_ids, pad_ids), 1),
        text_mask=torch.cat((batch.text_mask, torch.zeros(b, 4, dtype=torch.bool)), 1),
        region_features=torch.cat((batch.region_features, torch.randn(b, 3, model.config.region_feature_size)), 1),
        region_boxes=torch.cat((batch.region_boxes, torch.rand(b, 3, 4) * 50), 1),
        region_valid=torch.cat((batch.region_valid, torch.zeros(b, 3, dtype=torch.bool)), 1),
        region_masked=torch.cat((batch.region_masked, torch.ones(b, 3, dtype=torch.bool)), 1))
    with torch.no_grad():
        a, p = model(batch), model(padded)
    real_text = batch.text_mask.unsqueeze(-1)
    torch.testing.assert_close(p.text[:, :t] * real_text, a.text * real_text, atol=1e-5, rtol=1e-5)
    real_regions = batch.region_valid.unsqueeze(-1)
    torch.testing.assert_close(p.regions[:, :r] * real_regions, a.regions * real_regions, atol=1e-5, rtol=1e-5)
    assert p.text[:, t:].abs().max() == 0 and p.regions[:, r:].abs().max() == 0   # padding reads as zeros
    # a row alone gives the same outputs as inside the batch
    with torch.no_grad():
        single = model(batch.replace(**{k: getattr(batch, k)[1:2] for k in
                                        ("input_ids", "text_mask", "region_features", "region_boxes",
                                         "region_valid", "region_masked", "image_size")}))
    torch.testing.assert_close(single.text[0] * real_text[1], a.text[1] * real_text[1], atol=1e-5, rtol=1e-5)


def test_execution_modes_agree(make_batch):
    """Packed/unpadded/SDPA (the fused path) and padded/eager (the plain path) compute the same function."""
    fused, plain = _model(), _model(unpad=False, pack=False, attention="eager")
    plain.load_state_dict(fused.state_dict())
    batch = make_batch(fused.config)
    with torch.no_grad():
        a, b = fused(batch), plain(batch)
    torch.testing.assert_close(a.text, b.text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.regions, b.regions, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(make_batch):
    plain, ckpt = _model(), _model(gradient_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    batch = make_batch(plain.config)
    grads = []
    for model in (plain, ckpt):
        model.train()
        out = model(batch)
        (out.text.square().sum() + out.regions.sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_masked_region_content_is_hidden(make_batch):
    """A masked region's feature reaches no output: its appearance is the learned mask vector and the
    whole-image feature carried by the text is the mean of unmasked regions only."""
    model = _model()
    batch = make_batch(model.config)
    changed = batch.region_features.clone()
    changed[batch.region_masked] = torch.randn(int(batch.region_masked.sum()), model.config.region_feature_size)
    with torch.no_grad():
        a, b = model(batch), model(batch.replace(region_features=changed))
    torch.testing.assert_close(a.text, b.text)
    torch.testing.assert_close(a.regions, b.regions)
    # and unmasking changes the output (the test can fail)
    with torch.no_grad():
        c = model(batch.replace(region_features=changed, region_masked=torch.zeros_like(batch.region_masked)))
    assert (c.text - a.text).abs().max() > 1e-4


def test_text_only_rows_ignore_their_regions(make_batch):
    model = _model()
    batch = make_batch(model.config, text_only=[False, True, False])
    changed = batch.region_features.clone()
    changed[1] = torch.randn_like(changed[1])
    with torch.no_grad():
        a, b = model(batch), model(batch.replace(region_features=changed))
    torch.testing.assert_close(a.text[1], b.text[1])
    assert a.regions[1].abs().max() == 0          # no regions on a text-only row
    assert not a.extras["has_regions"][1] and a.extras["has_regions"][0]
    # a text-only row equals the same text in a text-only batch
    with torch.no_grad():
        alone = model(batch.replace(region_features=None, region_boxes=None, region_valid=None,
                                    region_masked=None, text_only=None))
    torch.testing.assert_close(alone.text[1], a.text[1], atol=1e-5, rtol=1e-5)


def test_visual_layernorm_starts_at_zero_by_default():
    model = VLBert(VLConfig.tiny())
    assert model.visual_ln_text.weight.abs().max() == 0 and model.visual_ln_region.weight.abs().max() == 0


def test_regions_share_one_position_and_segment_c(make_batch):
    """Region embeddings carry position t (the row's text length) and segment C: moving a region's slot
    changes nothing, and changing a row's text length shifts the position every region reads."""
    model = _model()
    batch = make_batch(model.config, region_counts=[6, 6, 6])
    x, layout, _ = model.embed(batch)
    regions = layout.unpack(x, 1)
    pos, seg = model.embeddings.position_embeddings.weight, model.embeddings.token_type_embeddings.weight
    t = batch.text_mask.sum(1)
    raw = model.visual_ln_region(model.region_projection(
        batch.region_features.masked_scatter(batch.region_masked.unsqueeze(-1).expand_as(batch.region_features),
                                             model.mask_region_feature.expand(int(batch.region_masked.sum()), -1)),
        batch.region_boxes, batch.image_size))
    expected = model.embeddings.LayerNorm(raw + model.region_token + pos[t].unsqueeze(1) + seg[2])
    torch.testing.assert_close(regions, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change,error,match", [
    (dict(input_ids=torch.zeros(3, 9)), TypeError, "input_ids must be an integer"),
    (dict(input_ids=torch.full((3, 9), 10**6)), ValueError, "input_ids must be in"),
    (dict(text_mask=torch.zeros(3, 9, dtype=torch.bool)), ValueError, "at least one real token"),
    (dict(text_mask=torch.ones(3, 8, dtype=torch.bool)), ValueError, "text_mask must have shape"),
    (dict(region_features=torch.zeros(3, 6, 7)), ValueError, "region_features must have shape"),
    (dict(image_size=None), ValueError, "image_size"),
    (dict(region_boxes=torch.full((3, 6, 4), float("nan"))), ValueError, "NaN"),
    (dict(region_valid=torch.ones(3, 6)), TypeError, "region_valid must be a bool"),
    (dict(token_type_ids=torch.full((3, 9), 2)), ValueError, "token_type_ids"),
])
def test_bad_batches_raise_clear_errors(make_batch, change, error, match):
    model = _model()
    batch = make_batch(model.config)
    with pytest.raises(error, match=match):
        model(batch.replace(**change))


def test_too_long_sequence_names_the_setting(make_batch):
    model = _model(max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(make_batch(model.config))


def test_value_checks_can_be_switched_off(make_batch):
    """With value checks off (no host syncs on a GPU) shape checks still run; data checks do not."""
    from vlengine.ops import set_value_checks
    model = _model()
    batch = make_batch(model.config)
    set_value_checks(False)
    try:
        model(batch.replace(token_type_ids=torch.ones_like(batch.input_ids)))   # would be read otherwise
        with pytest.raises(ValueError, match="text_mask must have shape"):
            model(batch.replace(text_mask=torch.ones(3, 8, dtype=torch.bool)))
    finally:
        set_value_checks(True)
    with pytest.raises(ValueError, match="token_type_ids"):
        model(batch.replace(token_type_ids=torch.full_like(batch.input_ids, 2)))
