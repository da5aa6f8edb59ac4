"""Input checks at the model entry: a wrong batch fails with a message naming the field, never deep inside a matmul.

Shape, dtype and device checks always run. Checks that read the data (token id
range, rows without tokens, finite boxes) follow ``vlengine.ops.set_value_checks``:
on by default, off when a GPU training loop wants no host syncs.
"""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch
from vlengine.ops._checks import value_checks_enabled

from .config import VLConfig


def _check(name: str, value, shape: tuple, kind: str, device) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"VLBatch.{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"VLBatch.{name} must have shape {want}, got {list(value.shape)}")
    if kind == "int" and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise TypeError(f"VLBatch.{name} must be an integer tensor, got {value.dtype}")
    if kind == "bool" and value.dtype != torch.bool:
        raise TypeError(f"VLBatch.{name} must be a bool tensor, got {value.dtype}")
    if kind == "float" and not value.is_floating_point():
        raise TypeError(f"VLBatch.{name} must be a floating tensor, got {value.dtype}")
    if value.device != device:
        raise ValueError(f"VLBatch.{name} is on {value.device} but input_ids is on {device}")


def check_text(batch: VLBatch, config: VLConfig) -> None:
    """input_ids / text_mask / token_type_ids shapes, dtypes, ranges; every row needs a real token."""
    if not isinstance(batch, VLBatch):
        raise TypeError(f"the model takes a vlengine.batch.VLBatch, got {type(batch).__name__}")
    ids = batch.input_ids
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError(f"VLBatch.input_ids must be a [B, T] tensor, got "
                         f"{list(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}")
    b, t = ids.shape
    _check("input_ids", ids, (b, t), "int", ids.device)
    _check("text_mask", batch.text_mask, (b, t), "bool", ids.device)
    if batch.token_type_ids is not None:
        _check("token_type_ids", batch.token_type_ids, (b, t), "int", ids.device)
    if b == 0 or t == 0:
        raise ValueError(f"VLBatch.input_ids is empty ({b} x {t}): a row needs at least its [CLS] token")
    if not value_checks_enabled():
        return
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size):
        raise ValueError(f"VLBatch.input_ids must be in [0, {config.vocab_size}), "
                         f"got values in [{int(ids.min())}, {int(ids.max())}]")
    if not bool(batch.text_mask.any(1).all()):
        raise ValueError("VLBatch.text_mask: every row needs at least one real token ([CLS])")
    types = batch.token_type_ids
    if types is not None:
        if int(types.min()) < 0 or int(types.max()) > 1:
            raise ValueError("VLBatch.token_type_ids must be 0 (segment A) or 1 (segment B) on text; "
                             "segment C belongs to regions")


def check_regions(batch: VLBatch, config: VLConfig, need_features: bool = True) -> None:
    """Region fields present, consistent in shape, with finite boxes and positive image sizes."""
    b, device = batch.input_ids.shape[0], batch.input_ids.device
    if batch.region_boxes is None:
        raise ValueError("VLBatch.region_boxes is required when the batch has regions")
    _check("region_boxes", batch.region_boxes, (b, None, 4), "float", device)
    r = batch.region_boxes.shape[1]
    if need_features:
        _check("region_features", batch.region_features, (b, r, config.region_feature_size), "float", device)
    if batch.region_valid is not None:
        _check("region_valid", batch.region_valid, (b, r), "bool", device)
    if batch.region_masked is not None:
        _check("region_masked", batch.region_masked, (b, r), "bool", device)
    if batch.text_only is not None:
        _check("text_only", batch.text_only, (b,), "bool", device)
    if batch.image_size is None:
        raise ValueError("VLBatch.image_size ([B, 2] height, width) is required to embed region boxes")
    _check("image_size", batch.image_size, (b, 2), "float", device)
    if not value_checks_enabled():
        return
    if not bool((batch.image_size > 0).all()):
        raise ValueError("VLBatch.image_size must be positive (height, width) on every row")
    if not bool(torch.isfinite(batch.region_boxes).all()):
        raise ValueError("VLBatch.region_boxes contains NaN or infinite coordinates")
