"""A text-only VL-BERT loaded from a BERT checkpoint is that BERT (the visual LayerNorm starts at weight 0)."""

import pytest
import torch
from transformers import BertConfig, BertForPreTraining

from vlengine.batch import VLBatch
from vlengine.models import VLBert, VLConfig
from vlengine.models.heads import MaskedLMHead, NSPHead
from vlengine.models.weights import load_bert

SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=1000),
    # BERT-base widths with two layers: the per-layer maths at full size, in a test-sized runtime
    "base-width": dict(hidden_size=768, num_hidden_layers=2, num_attention_heads=12, intermediate_size=3072,
                       vocab_size=30522),
}


def _bert_dir(tmp_path, size, gen, safe=True):
    cfg = BertConfig(**SIZES[size], max_position_embeddings=128, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    bert = BertForPreTraining(cfg).eval()
    with torch.no_grad():   # random, non-trivial weights everywhere (LayerNorms and biases included)
        for p in bert.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    if safe:
        bert.save_pretrained(tmp_path)
    else:   # the older checkpoint form: config.json + a pickled state dict (read back weights-only)
        bert.config.to_json_file(tmp_path / "config.json")
        torch.save(bert.state_dict(), tmp_path / "pytorch_model.bin")
    return bert


def _engine_config(size, **kw):
    s = SIZES[size]
    return VLConfig(vocab_size=s["vocab_size"], hidden_size=s["hidden_size"], num_layers=s["num_hidden_layers"],
                    num_heads=s["num_attention_heads"], intermediate_size=s["intermediate_size"],
                    max_position_embeddings=128, hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0,
                    region_feature_size=32, geometry_frequencies=8, **kw)


def _text_batch(gen, vocab, lengths, width):
    ids = torch.randint(0, vocab, (len(lengths), width), generator=gen)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return VLBatch(input_ids=ids.masked_fill(~mask, 0), text_mask=mask,
                   token_type_ids=(torch.arange(width) >= 4).long().expand(len(lengths), width) * mask)


@pytest.mark.parametrize("size", ["tiny", "base-width"])
@pytest.mark.parametrize("unpad,pack", [(True, True), (False, False)])
def test_text_only_vlbert_equals_bert(tmp_path, rng, size, unpad, pack):
    bert = _bert_dir(tmp_path, size, rng)
    model = VLBert(_engine_config(size, unpad=unpad, pack=pack)).eval()
    mlm = MaskedLMHead(model.config, model.embeddings.word_embeddings)
    nsp = NSPHead(model.config)
    report = load_bert(model, tmp_path, mlm_head=mlm, nsp_head=nsp)
    assert "encoder.layers.0.attention.qkv.weight" in report["loaded"]
    assert "region_projection.linear.weight" in report["initialised"]

    batch = _text_batch(rng, model.config.vocab_size, [11, 7, 3, 11], 11)
    with torch.no_grad():
        out = model(batch)
        ref = bert(input_ids=batch.input_ids, attention_mask=batch.text_mask.long(),
                   token_type_ids=batch.token_type_ids, output_hidden_states=True)
        hidden = ref.hidden_states[-1]
        real = batch.text_mask.unsqueeze(-1)
        torch.testing.assert_close(out.text * real, hidden * real, atol=1e-5, rtol=1e-5)
        pooled = bert.bert.pooler(hidden)
        torch.testing.assert_close(out.pooled, pooled, atol=1e-5, rtol=1e-5)
        # the heads loaded from cls.* agree too
        torch.testing.assert_close(mlm(out.text)[batch.text_mask], ref.prediction_logits[batch.text_mask],
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(nsp(out.pooled), ref.seq_relationship_logits, atol=1e-5, rtol=1e-5)


def test_pytorch_model_bin_loads_the_same(tmp_path, rng):
    bert = _bert_dir(tmp_path, "tiny", rng, safe=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    model = VLBert(_engine_config("tiny")).eval()
    load_bert(model, tmp_path)
    batch = _text_batch(rng, 1000, [6, 9], 9)
    with torch.no_grad():
        ref = bert.bert(input_ids=batch.input_ids, attention_mask=batch.text_mask.long(),
                        token_type_ids=batch.token_type_ids).last_hidden_state
        real = batch.text_mask.unsqueeze(-1)
        torch.testing.assert_close(model(batch).text * real, ref * real, atol=1e-5, rtol=1e-5)
