"""Forward + backward of every architecture with every head; SemVLP's shared parameters; parameter counts."""

import pytest
import torch

from vlengine.models import CSSBert, InterBert, SemVLP, VLBert, VLConfig
from vlengine.models.encoder import Encoder
from vlengine.models.heads import (ImageQAHead, InterBertITMHead, ITMHead, MaskedLMHead,
                                   NSPHead, RegionClassificationHead, RegionFeatureRegressionHead)


def _heads(config, model):
    return {
        "mlm": MaskedLMHead(config, model.embeddings.word_embeddings),
        "mrc": RegionClassificationHead(config),
        "mrfr": RegionFeatureRegressionHead(config),
        "itm": ITMHead(config),
        "nsp": NSPHead(config),
        "qa": ImageQAHead(config),
        "inter_itm": InterBertITMHead(config),
    }


def _all_losses(heads, out, batch, gen):
    qa_scores = torch.rand(batch.batch_size, heads["qa"].classifier.out_features, generator=gen)
    return {
        "mlm": heads["mlm"].loss(out.text, batch.mlm_labels),
        "mrc_soft": heads["mrc"].loss(out.regions, batch.region_masked, soft_targets=batch.region_soft_labels),
        "mrc_hard": heads["mrc"].loss(out.regions, batch.region_masked, batch.region_targets),
        "mrfr": heads["mrfr"].loss(out.regions, batch.region_masked, batch.region_feature_targets),
        "itm": heads["itm"].loss(out.pooled, batch.itm_label),
        "nsp": heads["nsp"].loss(out.pooled, batch.itm_label),
        "qa": heads["qa"].loss(out.pooled, qa_scores),
        "inter_itm": heads["inter_itm"].loss(out.pooled, out.image, batch.itm_label),
    }


@pytest.mark.parametrize("arch,kwargs", [(VLBert, {}), (InterBert, {}), (SemVLP, {"mode": "single"}),
                                         (SemVLP, {"mode": "two"}), (CSSBert, {})])
@pytest.mark.parametrize("pre_ln", [False, True])
def test_forward_backward_every_head(make_batch, rng, arch, kwargs, pre_ln):
    config = VLConfig.tiny(pre_layer_norm=pre_ln)
    model = arch(config).train()
    heads = _heads(config, model)
    batch = make_batch(config)
    out = model(batch, **kwargs)
    b, t, r = batch.batch_size, batch.input_ids.shape[1], batch.region_boxes.shape[1]
    assert out.text.shape == (b, t, config.hidden_size) and out.regions.shape == (b, r, config.hidden_size)
    assert out.pooled.shape == out.image.shape == (b, config.hidden_size)
    losses = _all_losses(heads, out, batch, rng)
    total = sum(losses.values())
    if arch is CSSBert:
        e, f = out.extras["sentence_embedding"], out.extras["image_embedding"]
        assert e.shape == f.shape == (b, config.contrastive_dim)
        total = total + torch.logsumexp(e @ f.t() / 0.1, dim=1).mean()   # any loss over E'F'^T
    for name, loss in losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss), name
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    if arch is SemVLP and kwargs["mode"] == "single":   # the cross-attention modules are two-stream only
        assert missing and all(".cross_attention" in n for n in missing)
    else:
        assert missing == []
    for name, head in heads.items():
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters()), name


def test_semvlp_modes_share_all_parameters_and_cross_attention_sits_above_ls(make_batch):
    config = VLConfig.tiny(num_layers=4, cross_attention_start=2, hidden_dropout=0.0, attention_dropout=0.0)
    model = SemVLP(config).eval()
    for i, layer in enumerate(model.encoder.layers):
        assert (layer.cross_attention is not None) == (i >= 2)
    batch = make_batch(config)
    touched = {}
    for mode in ("single", "two"):
        model.zero_grad(set_to_none=True)
        out = model(batch, mode=mode)
        (out.text.sum() + out.regions.sum() + out.pooled.sum()).backward()
        touched[mode] = {n for n, p in model.named_parameters() if p.grad is not None}
    everything = {n for n, _ in model.named_parameters()}
    cross = {n for n in everything if ".cross_attention" in n}
    assert touched["two"] == everything
    assert touched["single"] == everything - cross and cross
    # the modes are different functions of the same parameters
    with torch.no_grad():
        assert (model(batch, mode="single").text - model(batch, mode="two").text).abs().max() > 1e-4
        # two-stream text never sees the image: changing regions leaves it unchanged
        other = batch.replace(region_features=torch.rand_like(batch.region_features))
        torch.testing.assert_close(model(batch, mode="two").text, model(other, mode="two").text)
    with pytest.raises(ValueError, match="mode"):
        model(batch, mode="three")


def test_interbert_independence_module_separates_modalities(make_batch):
    config = VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0)
    model = InterBert(config).eval()
    assert len(model.text_encoder.layers) == len(model.image_encoder.layers) == config.num_independence_layers
    batch = make_batch(config)
    with torch.no_grad():
        a = model(batch)
        b = model(batch.replace(region_features=torch.rand_like(batch.region_features)))
    assert (a.text - b.text).abs().max() > 1e-4   # the interaction module mixes the modalities


def test_cssbert_separate_embeddings_do_not_see_the_other_modality(make_batch):
    config = VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0, visual_ln_init=1.0)
    model = CSSBert(config).eval()
    batch = make_batch(config)
    other_image = batch.replace(region_features=torch.rand_like(batch.region_features))
    new_words = torch.randint(5, config.vocab_size, batch.input_ids.shape)
    new_words[:, 0] = batch.input_ids[:, 0]     # same [CLS]: the image pass reads [CLS] + regions only
    other_text = batch.replace(input_ids=new_words)
    with torch.no_grad():
        a, b, c = model(batch), model(other_image), model(other_text)
    torch.testing.assert_close(a.extras["sentence_embedding"], b.extras["sentence_embedding"])
    torch.testing.assert_close(a.extras["image_embedding"], c.extras["image_embedding"])
    joint = CSSBert(config, contrastive_inputs="joint").eval()
    joint.load_state_dict(model.state_dict())
    with torch.no_grad():
        j = joint(batch)
    torch.testing.assert_close(j.extras["sentence_embedding"], joint.projection(j.pooled, j.image)[0])
    with pytest.raises(ValueError, match="contrastive_inputs"):
        CSSBert(config, contrastive_inputs="both")


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_papers():
    """Counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        base, large = VLConfig.base(), VLConfig.large()
        # BERT-base: ~85M non-embedding parameters (12 x 7.08M); BERT-large: ~302M
        assert _count(Encoder(base, 12)) == pytest.approx(85.05e6, rel=1e-3)
        assert _count(Encoder(large, 24)) == pytest.approx(302.3e6, rel=1e-3)
        vlbert = VLBert(base)
        assert _count(vlbert) == pytest.approx(112.6e6, rel=5e-3)   # BERT-base 110M + visual embedding
        # InterBERT: "173M" (vs ViLBERT's 221M) = everything but the word-embedding table:
        # 12 interaction + 2 x 6 independence layers, image embedding, position/segment tables, pooler.
        inter = InterBert(base)
        without_words = _count(inter) - inter.embeddings.word_embeddings.weight.numel()
        assert without_words == pytest.approx(173e6, rel=0.01)
        semvlp = SemVLP(base)
        cross = sum(p.numel() for n, p in semvlp.named_parameters() if ".cross_attention" in n)
        assert cross == 6 * (4 * 768 * 768 + 4 * 768 + 2 * 768)   # one cross-attention block per layer above L_s=6
