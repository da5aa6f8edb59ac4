"""Loss terms shared by the objectives, each returning (loss, metrics) with the engine's metric names."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlengine.batch import IGNORE_INDEX, VLBatch

from .output import accuracy


def mlm_term(head, text_hidden: torch.Tensor, labels: torch.Tensor, name: str = "mlm"):
    """Masked-token loss (masked rows only) and accuracy."""
    loss = head.loss(text_hidden, labels)
    with torch.no_grad():
        logits, targets = head.masked_logits(text_hidden.detach(), labels)
        acc = accuracy(logits, targets)
    return loss, {f"{name}_loss": loss.detach().float(), f"{name}_acc": acc}


def predicted_regions(batch: VLBatch) -> torch.Tensor:
    """[B, R] bool: the regions a classification loss covers.

    The masking policy's selection (region_targets != IGNORE_INDEX) when it set
    targets: VL-BERT selects 15% of RoIs, masks 90% of those and keeps 10%
    unmasked, and all selected ones are predicted. Otherwise the masked ones.
    """
    if batch.region_targets is not None:
        return batch.region_targets != IGNORE_INDEX
    return batch.region_masked


def region_class_term(head, region_hidden: torch.Tensor, batch: VLBatch, soft: bool, name: str = "mrc"):
    """Masked region classification (hard or soft targets) and its accuracy against the hard labels."""
    soft_targets = batch.region_soft_labels if soft else None
    loss = head.loss(region_hidden, predicted_regions(batch), batch.region_targets, soft_targets)
    metrics = {f"{name}_loss": loss.detach().float()}
    if batch.region_targets is not None:
        with torch.no_grad():
            metrics[f"{name}_acc"] = accuracy(head(region_hidden.detach()), batch.region_targets)
    return loss, metrics


def pair_term(logits: torch.Tensor, labels: torch.Tensor, name: str):
    """Two-way cross-entropy (ITM / NSP) and accuracy; 0 loss with NaN accuracy on an empty selection."""
    if labels.numel() == 0:
        return logits.sum() * 0.0, {f"{name}_loss": torch.tensor(float("nan")), f"{name}_acc": torch.tensor(float("nan"))}
    loss = F.cross_entropy(logits.float(), labels).to(logits.dtype)
    return loss, {f"{name}_loss": loss.detach().float(), f"{name}_acc": accuracy(logits.detach(), labels)}


def positive_rows(batch: VLBatch) -> torch.Tensor:
    """[B] bool: image rows whose text belongs to the image (matched captions, and question rows,
    whose ITM label is IGNORE_INDEX); only ITM negatives (label 0) are left out."""
    rows = batch.image_rows
    if batch.itm_label is not None:
        rows = rows & (batch.itm_label != 0)
    return rows
