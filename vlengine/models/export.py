"""The engine's exported weights: one safetensors file that carries its own model config.

Tensors keep the names of the module that was trained: ``model.*`` for the backbone and one prefix
per head (``mlm.*``, ``mrc.*``, ``itm.*``, ... for a pretraining objective; ``head.*`` for a downstream
model, whose backbone is ``backbone.*``). The safetensors header's string metadata holds:

    vlengine_export   format version ("1")
    architecture      VLBert | InterBert | SemVLP | CSSBert
    model_config      the VLConfig as JSON
    backbone_prefix   where the backbone's tensors start ("model." or "backbone.")
    recipe, task      what trained it (either may be empty)
    source            where the weights came from (a checkpoint folder, a converted file)

so ``load_export(path)`` rebuilds the backbone with no other file, and nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

from ..atomic import atomic_path
from .config import VLConfig

EXPORT_FORMAT = "1"
ARCHITECTURES = ("VLBert", "InterBert", "SemVLP", "CSSBert")


@dataclass
class ExportInfo:
    architecture: str
    config: VLConfig
    backbone_prefix: str = "model."
    recipe: str = ""
    task: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)   # any other metadata, as strings

    def metadata(self) -> dict[str, str]:
        return {"format": "pt", "vlengine_export": EXPORT_FORMAT, "architecture": self.architecture,
                "model_config": json.dumps(self.config.to_dict(), sort_keys=True),
                "backbone_prefix": self.backbone_prefix, "recipe": self.recipe, "task": self.task,
                "source": self.source, **{k: str(v) for k, v in self.extra.items()}}


def export_info_of(backbone: torch.nn.Module, backbone_prefix: str = "model.", **kwargs) -> ExportInfo:
    """The ExportInfo of a vlengine architecture instance."""
    name = type(backbone).__name__
    if name not in ARCHITECTURES:
        raise ValueError(f"{name} is not a vlengine architecture ({', '.join(ARCHITECTURES)})")
    return ExportInfo(name, backbone.config, backbone_prefix, **kwargs)


def write_export(path: str, tensors: dict[str, torch.Tensor], info: ExportInfo) -> str:
    """Write ``tensors`` (fp32 copies of floating tensors; shared storage is split) with ``info``, atomically."""
    from safetensors.torch import save_file

    out = {name: (t.detach().to(torch.float32) if t.is_floating_point() else t.detach()).contiguous().clone()
           for name, t in tensors.items()}
    if not any(n.startswith(info.backbone_prefix) for n in out):
        raise ValueError(f"no tensor starts with the backbone prefix {info.backbone_prefix!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(out, tmp, metadata=info.metadata())
    return path


def read_export_info(path: str) -> ExportInfo:
    """The header of an export (no tensor is read): a clear error for a file that is not one."""
    from safetensors import safe_open

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file (an engine export is one .safetensors file)")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors' own error types for a corrupt or foreign header
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    if meta.get("vlengine_export") is None:
        raise ValueError(f"{path} carries no model config (not a vlengine export: `vlengine pretrain` and "
                         "`vlengine finetune` write one; `vlengine convert-checkpoint` converts published ones)")
    if meta["vlengine_export"] != EXPORT_FORMAT:
        raise ValueError(f"{path}: export format {meta['vlengine_export']!r}, this vlengine reads {EXPORT_FORMAT!r}")
    if meta.get("architecture") not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown architecture {meta.get('architecture')!r}")
    try:
        config = VLConfig.from_dict(json.loads(meta["model_config"]), source=f"{path} (model_config)")
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: its model_config cannot be read ({err})") from None
    known = {"format", "vlengine_export", "architecture", "model_config", "backbone_prefix", "recipe", "task", "source"}
    return ExportInfo(meta["architecture"], config, meta.get("backbone_prefix", "model."), meta.get("recipe", ""),
                      meta.get("task", ""), meta.get("source", ""), {k: v for k, v in meta.items() if k not in known})


def read_export(path: str) -> tuple[ExportInfo, dict[str, torch.Tensor]]:
    """(info, every tensor of the file)."""
    from safetensors.torch import load_file

    info = read_export_info(path)
    try:
        return info, load_file(path)
    except Exception as err:
        raise ValueError(f"{path}: the tensors cannot be read ({err})") from None


def build_backbone(info: ExportInfo, config: VLConfig | None = None) -> torch.nn.Module:
    """A fresh instance of the export's architecture (``config`` overrides non-size settings, e.g. dropout)."""
    from vlengine import models

    return getattr(models, info.architecture)(config or info.config)


def backbone_state(info: ExportInfo, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = info.backbone_prefix
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


def head_state(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (e.g. "mlm."), prefix removed."""
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


def load_backbone_into(model: torch.nn.Module, info: ExportInfo, tensors: dict[str, torch.Tensor],
                       path: str = "export") -> None:
    """Fill ``model`` (same architecture and sizes) with the export's backbone; every tensor must match."""
    if type(model).__name__ != info.architecture:
        raise ValueError(f"{path} holds a {info.architecture}, not a {type(model).__name__}")
    for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size",
                 "region_feature_size", "type_vocab_size"):
        if getattr(info.config, name) != getattr(model.config, name):
            raise ValueError(f"{path}: {name}={getattr(info.config, name)} but the model has "
                             f"{getattr(model.config, name)}")
    state = backbone_state(info, tensors)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not match a {info.architecture}: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")


def load_export(path: str, config: VLConfig | None = None) -> torch.nn.Module:
    """The backbone an export holds, built from its own config and filled with its weights."""
    info, tensors = read_export(path)
    model = build_backbone(info, config)
    load_backbone_into(model, info, tensors, path)
    return model
