"""Weights in and out: Hugging Face BERT directories in, the engine's safetensors + JSON checkpoints both ways.

A BERT directory holds ``config.json`` and ``model.safetensors`` (or
``pytorch_model.bin``, read with ``torch.load(weights_only=True)``: no code is
unpickled). Its embeddings, encoder layers and pooler fill the text embeddings,
the (first) encoder and the pooler of any vlengine architecture; the separate
Q, K, V matrices are concatenated into the fused QKV projection. Everything the
checkpoint does not have (visual embeddings, segment C, InterBERT's
independence layers, SemVLP's cross-attention, new heads) keeps its N(0, 0.02)
initialisation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path, write_json
from .config import VLConfig

_CONFIG_CHECKS = {  # HF config key -> VLConfig field
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
}

# Hugging Face activation names -> VLConfig.hidden_act
_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}


def read_bert_config(directory) -> dict:
    """``config.json`` of a Hugging Face BERT directory, as a dict."""
    config_path = Path(directory) / "config.json"
    try:
        hf_config = json.loads(config_path.read_text())
    except OSError as error:
        raise ValueError(f"BERT directory {directory}: cannot read config.json ({error})") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"BERT directory {directory}: config.json is not valid JSON ({error})") from error
    if not isinstance(hf_config, dict):
        raise ValueError(f"BERT directory {directory}: config.json is not a JSON object")
    return hf_config


def read_bert_weights(directory) -> dict[str, torch.Tensor]:
    """The state dict of a BERT directory with ``bert.`` prefixes removed and gamma/beta renamed."""
    directory = Path(directory)
    safetensors_path, bin_path = directory / "model.safetensors", directory / "pytorch_model.bin"
    if safetensors_path.exists():
        from safetensors.torch import load_file
        try:
            state = load_file(str(safetensors_path))
        except Exception as error:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{safetensors_path} is not a readable safetensors file: {error}") from error
    elif bin_path.exists():
        try:
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError, RuntimeError on truncated archives
            raise ValueError(f"{bin_path} cannot be read as a weights-only PyTorch state dict: {error}") from error
        if not isinstance(state, dict):
            raise ValueError(f"{bin_path} holds a {type(state).__name__}, not a state dict")
    else:
        raise ValueError(f"BERT directory {directory} has neither model.safetensors nor pytorch_model.bin")
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("bert.").replace("LayerNorm.gamma", "LayerNorm.weight") \
                 .replace("LayerNorm.beta", "LayerNorm.bias")
        cleaned[key] = value
    return cleaned


def _check_sizes(hf_config: dict, config: VLConfig, directory) -> None:
    for hf_key, field in _CONFIG_CHECKS.items():
        if hf_key in hf_config and hf_config[hf_key] != getattr(config, field):
            raise ValueError(f"BERT directory {directory}: {hf_key}={hf_config[hf_key]} but the model has "
                             f"{field}={getattr(config, field)}")


def _copy(param: torch.Tensor, value: torch.Tensor, name: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError(f"checkpoint tensor {name} has shape {list(value.shape)}, model expects {list(param.shape)}")
    with torch.no_grad():
        param.copy_(value.to(param.dtype))


def bert_to_engine(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Rename a (prefix-free) BERT state dict to the engine's names: embeddings.*, encoder.layers.*, pooler.*."""
    out = {}
    for key in ("word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
                "LayerNorm.weight", "LayerNorm.bias"):
        if f"embeddings.{key}" in state:
            out[f"embeddings.{key}"] = state[f"embeddings.{key}"]
    for i in range(num_layers):
        src, dst = f"encoder.layer.{i}.", f"encoder.layers.{i}."
        if src + "attention.self.query.weight" not in state:
            raise ValueError(f"BERT checkpoint has no layer {i} (encoder.layer.{i}.attention.self.query.weight)")
        for kind in ("weight", "bias"):
            out[dst + f"attention.qkv.{kind}"] = torch.cat(
                [state[src + f"attention.self.{p}.{kind}"] for p in ("query", "key", "value")])
            out[dst + f"attention.output.{kind}"] = state[src + f"attention.output.dense.{kind}"]
            out[dst + f"attention_norm.{kind}"] = state[src + f"attention.output.LayerNorm.{kind}"]
            out[dst + f"ffn.intermediate.{kind}"] = state[src + f"intermediate.dense.{kind}"]
            out[dst + f"ffn.output.{kind}"] = state[src + f"output.dense.{kind}"]
            out[dst + f"ffn_norm.{kind}"] = state[src + f"output.LayerNorm.{kind}"]
    for kind in ("weight", "bias"):
        if f"pooler.dense.{kind}" in state:
            out[f"pooler.dense.{kind}"] = state[f"pooler.dense.{kind}"]
    return out


def load_bert(model: nn.Module, directory, mlm_head: nn.Module | None = None,
              nsp_head: nn.Module | None = None) -> dict[str, list[str]]:
    """Initialise ``model`` (any vlengine architecture) and optional heads from a local BERT directory.

    Fills ``model.embeddings`` (word, position, segments A and B, LayerNorm),
    ``model.encoder`` layer by layer and ``model.pooler``; with ``mlm_head``, its
    transform and bias (``cls.predictions``); with ``nsp_head``, its classifier
    (``cls.seq_relationship``).

    Returns:
        {"loaded": engine parameter names filled from the checkpoint,
         "initialised": parameter names that keep their fresh N(0, 0.02) values}.
    """
    hf_config = read_bert_config(directory)
    config: VLConfig = model.config
    _check_sizes(hf_config, config, directory)   # before reading hundreds of MB of weights
    hf_act = hf_config.get("hidden_act", "gelu")
    if _HF_ACTIVATIONS.get(hf_act) != config.hidden_act:
        raise ValueError(f"BERT directory {directory}: hidden_act={hf_act!r}, model has {config.hidden_act!r}")
    if config.pre_layer_norm:
        raise ValueError("a BERT checkpoint is Post-LN; build the model with pre_layer_norm=False to load it")
    state = read_bert_weights(directory)
    mapped = bert_to_engine(state, config.num_layers)
    params = dict(model.named_parameters())
    loaded = []
    for name, value in mapped.items():
        if name not in params:
            raise ValueError(f"model has no parameter {name} for checkpoint tensor {name}")
        if name == "embeddings.token_type_embeddings.weight":
            # BERT has segments A and B; segment C (regions) stays newly initialised.
            rows = min(value.shape[0], params[name].shape[0])
            with torch.no_grad():
                params[name][:rows].copy_(value[:rows].to(params[name].dtype))
        else:
            _copy(params[name], value, name)
        loaded.append(name)
    if mlm_head is not None:
        for src, dst in (("cls.predictions.transform.dense.weight", "transform.dense.weight"),
                         ("cls.predictions.transform.dense.bias", "transform.dense.bias"),
                         ("cls.predictions.transform.LayerNorm.weight", "transform.LayerNorm.weight"),
                         ("cls.predictions.transform.LayerNorm.bias", "transform.LayerNorm.bias"),
                         ("cls.predictions.bias", "bias")):
            if src in state:
                _copy(dict(mlm_head.named_parameters())[dst], state[src], src)
                loaded.append(f"mlm.{dst}")
    if nsp_head is not None:
        for kind in ("weight", "bias"):
            src = f"cls.seq_relationship.{kind}"
            if src in state:
                _copy(dict(nsp_head.named_parameters())[f"classifier.{kind}"], state[src], src)
                loaded.append(f"nsp.classifier.{kind}")
    initialised = sorted(set(params) - set(loaded))
    return {"loaded": loaded, "initialised": initialised}


# ---- the engine's own checkpoints ----

def save_checkpoint(model: nn.Module, directory) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``.

    Each file is written to a temporary name and renamed: an interrupted save
    leaves the previous checkpoint intact. Tied tensors (MLM decoder = word
    embeddings) are stored once.
    """
    from safetensors.torch import save_model
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "model.safetensors") as weights_tmp:
        save_model(model, weights_tmp, metadata={"format": "pt", "architecture": type(model).__name__})
    write_json(directory / "config.json", {"architecture": type(model).__name__, **model.config.to_dict()},
               indent=2, sort_keys=True)


def read_checkpoint_config(directory) -> tuple[str, VLConfig]:
    """(architecture name, VLConfig) of an engine checkpoint."""
    path = Path(directory) / "config.json"
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"checkpoint config {path} cannot be read: {error}") from error
    if not isinstance(values, dict) or "architecture" not in values:
        raise ValueError(f"checkpoint config {path} has no 'architecture' entry")
    architecture = values.pop("architecture")
    return architecture, VLConfig.from_dict(values, source=str(path))


def load_checkpoint(model: nn.Module, directory, strict: bool = True) -> None:
    """Fill ``model`` from an engine checkpoint: a folder written by ``save_checkpoint``, or an export file
    (``vlengine pretrain``'s model_fp32.safetensors, ``vlengine.models.export``: its backbone part).
    Architecture and sizes must match. To build the model from an export instead: ``export.load_export``."""
    from safetensors.torch import load_model
    if Path(directory).is_file():
        from .export import load_backbone_into, read_export
        info, tensors = read_export(str(directory))
        load_backbone_into(model, info, tensors, str(directory))
        return
    directory = Path(directory)
    architecture, config = read_checkpoint_config(directory)
    if architecture != type(model).__name__:
        raise ValueError(f"checkpoint {directory} holds a {architecture}, not a {type(model).__name__}")
    for field in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size"):
        if getattr(config, field) != getattr(model.config, field):
            raise ValueError(f"checkpoint {directory}: {field}={getattr(config, field)} but the model has "
                             f"{getattr(model.config, field)}")
    weights = directory / "model.safetensors"
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except Exception as error:  # corrupt or truncated file
        raise ValueError(f"checkpoint weights {weights} cannot be read: {error}") from error
    if strict and (missing or unexpected):
        raise ValueError(f"checkpoint {weights} does not match the model: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
