"""Configs from YAML/JSON, engine checkpoints (safetensors + JSON), and BERT-directory failure modes."""

import json

import pytest
import torch

from vlengine.models import InterBert, SemVLP, VLBert, VLConfig
from vlengine.models.heads import MaskedLMHead
from vlengine.models.weights import load_bert, load_checkpoint, read_checkpoint_config, save_checkpoint


def test_presets():
    base, large = VLConfig.base(), VLConfig.large()
    assert (base.num_layers, base.hidden_size, base.num_heads, base.intermediate_size) == (12, 768, 12, 3072)
    assert (large.num_layers, large.hidden_size, large.num_heads, large.intermediate_size) == (24, 1024, 16, 4096)
    assert base.vocab_size == 30522 and base.region_feature_size == 2048 and base.num_region_classes == 1601
    assert base.geometry_size == 2048


def test_config_files_round_trip(tmp_path):
    (tmp_path / "m.yaml").write_text("model:\n  preset: large\n  hidden_dropout: 0.2\n  pre_layer_norm: true\n")
    cfg = VLConfig.from_file(tmp_path / "m.yaml")
    assert cfg.hidden_size == 1024 and cfg.hidden_dropout == 0.2 and cfg.pre_layer_norm
    cfg.save(tmp_path / "m.json")
    assert VLConfig.from_file(tmp_path / "m.json") == cfg


@pytest.mark.parametrize("text,suffix,match", [
    ("hiden_size: 12\n", ".yaml", "unknown model setting"),
    ("preset: huge\n", ".yaml", "preset must be"),
    ("{not json", ".json", "not valid json"),
    ("hidden_size: 100\nnum_heads: 12\n", ".yaml", "divisible"),
    ("hidden_act: swish\n", ".yaml", "hidden_act"),
    ("hidden_dropout: 1.5\n", ".yaml", "hidden_dropout"),
    ("num_layers: 0\n", ".yaml", "num_layers must be a positive"),
    ("- 1\n- 2\n", ".yaml", "expected a mapping"),
])
def test_bad_config_files(tmp_path, text, suffix, match):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    with pytest.raises((ValueError, TypeError), match=match):
        VLConfig.from_file(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read model config"):
        VLConfig.from_file(tmp_path / "absent.yaml")


@pytest.mark.parametrize("arch", [VLBert, InterBert, SemVLP])
def test_checkpoint_round_trip(tmp_path, make_batch, arch):
    config = VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0)
    model = arch(config).eval()
    save_checkpoint(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    name, loaded_config = read_checkpoint_config(tmp_path)
    assert name == arch.__name__ and loaded_config == config
    fresh = arch(loaded_config).eval()
    load_checkpoint(fresh, tmp_path)
    batch = make_batch(config)
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch).text, model(batch).text)


def test_checkpoint_with_tied_mlm_head(tmp_path):
    config = VLConfig.tiny()
    holder = torch.nn.Module()
    holder.config = config
    holder.model = VLBert(config)
    holder.mlm = MaskedLMHead(config, holder.model.embeddings.word_embeddings)
    save_checkpoint(holder, tmp_path)
    again = torch.nn.Module()
    again.config = config
    again.model = VLBert(config)
    again.mlm = MaskedLMHead(config, again.model.embeddings.word_embeddings)
    load_checkpoint(again, tmp_path)
    assert again.mlm.word_embeddings.weight is again.model.embeddings.word_embeddings.weight
    torch.testing.assert_close(again.mlm.word_embeddings.weight, holder.model.embeddings.word_embeddings.weight)


def test_checkpoint_mismatches_and_corruption(tmp_path):
    config = VLConfig.tiny()
    save_checkpoint(VLBert(config), tmp_path)
    with pytest.raises(ValueError, match="holds a VLBert, not a InterBert"):
        load_checkpoint(InterBert(config), tmp_path)
    with pytest.raises(ValueError, match="hidden_size"):
        load_checkpoint(VLBert(VLConfig.tiny(hidden_size=32)), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])          # a truncated write
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(VLBert(config), tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="cannot be read"):
        read_checkpoint_config(tmp_path)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    config = VLConfig.tiny()
    first = VLBert(config)
    save_checkpoint(first, tmp_path)
    import safetensors.torch

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(safetensors.torch, "save_model", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(VLBert(config), tmp_path)
    restored = VLBert(config)
    load_checkpoint(restored, tmp_path)
    torch.testing.assert_close(restored.encoder.layers[0].attention.qkv.weight,
                               first.encoder.layers[0].attention.qkv.weight)


def _fake_bert_dir(path, config, **overrides):
    values = {"hidden_size": config.hidden_size, "num_hidden_layers": config.num_layers,
              "num_attention_heads": config.num_heads, "intermediate_size": config.intermediate_size,
              "vocab_size": config.vocab_size, **overrides}
    (path / "config.json").write_text(json.dumps(values))


def test_bert_directory_failures(tmp_path):
    config = VLConfig.tiny()
    model = VLBert(config)
    with pytest.raises(ValueError, match="cannot read config.json"):
        load_bert(model, tmp_path)
    _fake_bert_dir(tmp_path, config)
    with pytest.raises(ValueError, match="neither model.safetensors nor pytorch_model.bin"):
        load_bert(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_bert(model, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="weights-only"):
        load_bert(model, tmp_path)
    _fake_bert_dir(tmp_path, config, hidden_size=128)
    with pytest.raises(ValueError, match="hidden_size=128"):
        load_bert(model, tmp_path)


def test_bert_bin_with_code_is_refused(tmp_path):
    """weights_only=True: a .bin that would run code on unpickling is an error, not an execution."""
    config = VLConfig.tiny()
    _fake_bert_dir(tmp_path, config)

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled code ran",))
    torch.save({"x": Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="weights-only"):
        load_bert(VLBert(config), tmp_path)


def test_bert_checkpoint_with_fewer_layers_is_an_error(tmp_path):
    from safetensors.torch import save_file
    config = VLConfig.tiny()
    _fake_bert_dir(tmp_path, config, num_hidden_layers=config.num_layers)
    save_file({"embeddings.word_embeddings.weight": torch.zeros(config.vocab_size, config.hidden_size)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no layer 0"):
        load_bert(VLBert(config), tmp_path)


def test_bert_initialises_interbert_and_semvlp(tmp_path):
    from transformers import BertConfig, BertModel
    config = VLConfig.tiny()
    bert = BertModel(BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                                num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                                intermediate_size=config.intermediate_size, max_position_embeddings=128))
    bert.save_pretrained(tmp_path)
    layer = bert.encoder.layer[1].attention.self
    fused = torch.cat((layer.query.weight, layer.key.weight, layer.value.weight))
    for arch, new in ((InterBert, "text_encoder.layers.0.attention.qkv.weight"),
                      (SemVLP, "encoder.layers.1.cross_attention.query.weight")):
        model = arch(config)
        report = load_bert(model, tmp_path)
        torch.testing.assert_close(model.encoder.layers[1].attention.qkv.weight, fused)
        assert new in report["initialised"] and "encoder.layers.1.attention.qkv.weight" in report["loaded"]
    with pytest.raises(ValueError, match="Post-LN"):
        load_bert(VLBert(VLConfig.tiny(pre_layer_norm=True)), tmp_path)
    with pytest.raises(ValueError, match="hidden_act"):
        load_bert(VLBert(VLConfig.tiny(hidden_act="relu")), tmp_path)
