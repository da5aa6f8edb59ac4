"""The engine's export format (vlengine/models/export.py): one safetensors file whose header carries
the architecture and model config; the file alone rebuilds the model, and a file that is not an
export, or one that does not match, is a clear error."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vlengine.models import InterBert, VLBert, VLConfig
from vlengine.models.export import export_info_of, load_export, read_export_info, write_export
from vlengine.models.weights import load_checkpoint


def _config(**overrides) -> VLConfig:
    values = dict(vocab_size=50, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                  region_feature_size=16, geometry_frequencies=4, max_position_embeddings=32,
                  num_independence_layers=1)
    values.update(overrides)
    return VLConfig.tiny(**values)


def _export(tmp_path, model, name="m.safetensors", **fields) -> str:
    path = str(tmp_path / name)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["mlm.bias"] = torch.randn(50)
    return write_export(path, tensors, export_info_of(model, **fields))


@pytest.mark.parametrize("architecture", [VLBert, InterBert])
def test_an_export_rebuilds_its_architecture_with_every_weight(tmp_path, architecture):
    torch.manual_seed(0)
    model = architecture(_config())
    path = _export(tmp_path, model, recipe="x", extra={"vocab": "[PAD]\n[UNK]\n"})
    info = read_export_info(path)
    assert (info.architecture, info.recipe, info.extra["vocab"]) == (architecture.__name__, "x", "[PAD]\n[UNK]\n")
    assert info.config == model.config
    rebuilt = load_export(path)
    assert type(rebuilt) is architecture
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
    # the models' own loader reads the file too (into a model built by the caller)
    fresh = architecture(_config())
    load_checkpoint(fresh, path)
    assert torch.equal(fresh.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)


def test_files_that_are_not_a_matching_export_are_refused_clearly(tmp_path):
    model = VLBert(_config())
    path = _export(tmp_path, model)
    foreign = str(tmp_path / "foreign.safetensors")
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="carries no model config"):
        read_export_info(foreign)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        read_export_info(str(corrupt))
    with pytest.raises(ValueError, match="no such file"):
        read_export_info(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="holds a VLBert, not a InterBert"):
        load_checkpoint(InterBert(_config()), path)
    with pytest.raises(ValueError, match="hidden_size=32 but the model has 64"):
        load_checkpoint(VLBert(_config(hidden_size=64, num_heads=2)), path)
    with pytest.raises(ValueError, match="backbone prefix"):
        write_export(str(tmp_path / "x.safetensors"), {"w": torch.zeros(1)}, export_info_of(model))
