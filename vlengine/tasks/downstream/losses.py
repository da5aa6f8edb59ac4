"""Downstream losses, each as the papers' codebases compute it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlengine.batch import IGNORE_INDEX


def soft_score_bce(logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits against soft answer scores, averaged over every element and multiplied by
    the number of answers (UNITER / LXMERT: ``bce(logits, targets, reduction="mean") * A``), i.e.
    summed over answers and averaged over rows. Rows with no in-vocabulary answer still train
    every logit towards 0, as in those codebases."""
    if scores is None or scores.shape != logits.shape:
        raise ValueError(f"answer scores must have the logits' shape {list(logits.shape)}, got "
                         f"{None if scores is None else list(scores.shape)}")
    if not bool(((scores >= 0) & (scores <= 1)).all()):
        raise ValueError("answer scores must lie in [0, 1] (NaN is not allowed)")
    loss = F.binary_cross_entropy_with_logits(logits.float(), scores.float(), reduction="mean") * logits.shape[1]
    return loss.to(logits.dtype)


def class_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled rows (IGNORE_INDEX rows skipped); 0 with a gradient path
    when no row is labelled, so a step never fails on a batch of out-of-vocabulary answers."""
    if labels is None or labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be a [{logits.shape[0]}] integer tensor")
    if not bool((labels != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX).to(logits.dtype)


def answer_score(logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The in-training VQA proxy: mean soft score of the argmax answer (reads lower than the official
    metric: no normalisation, and answers outside the vocabulary score 0)."""
    picked = scores.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    return picked.float().mean().detach()
