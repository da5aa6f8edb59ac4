"""Materialised pure-PyTorch contrastive losses: the oracles of vlengine.ops.contrastive_loss.

Both functions build the full logit matrix, so their memory is quadratic in
the batch: they exist to check the tiled kernels, as the benchmark baseline,
and as the "reference" backend's statistics. Half-precision inputs are
computed in float32 (the precision the kernels accumulate in).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _opmath(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def contrastive_loss(text: torch.Tensor, image: torch.Tensor, temperature, kind: str = "infonce",
                     normalize: bool = True, reduction: str = "mean") -> torch.Tensor:
    """The whole-batch loss written the obvious way, on a materialised [B, B] logit matrix.

    ``kind="infonce"``: per pair i, 0.5 * (CE(row i, i) + CE(column i, i)).
    ``kind="pwcl"``: -log(sum_i exp(s_ii) / sum_{i != j} exp(s_ij)), s = logits.
    """
    acc = _opmath(text)
    t, v = text.to(acc), image.to(acc)
    if normalize:
        t, v = F.normalize(t, dim=1), F.normalize(v, dim=1)
    temperature = temperature.to(acc) if isinstance(temperature, torch.Tensor) else temperature
    logits = t @ v.T / temperature
    n = logits.shape[0]
    if kind == "infonce":
        target = torch.arange(n, device=logits.device)
        per_pair = 0.5 * (F.cross_entropy(logits, target, reduction="none")
                          + F.cross_entropy(logits.T, target, reduction="none"))
        return {"none": per_pair, "sum": per_pair.sum(), "mean": per_pair.mean()}[reduction]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    numerator = torch.logsumexp(logits.diagonal(), dim=0)
    denominator = torch.logsumexp(logits.masked_fill(eye, float("-inf")).flatten(), dim=0)
    return denominator - numerator


def contrastive_loss_stats(text: torch.Tensor, image: torch.Tensor, scale: torch.Tensor, diagonal_offset: int,
                           normalize: bool, exclude_diagonal: bool, with_columns: bool):
    """The statistics the tiled kernels compute, from a materialised [b, B] block.

    Logits z[i, j] = scale * <t_i, v_j> (t, v L2-normalised when ``normalize``);
    the "diagonal" is z[i, i + diagonal_offset] (the positive pairs of these b
    rows when they are a slice of a larger batch). Returns (row_lse [b],
    col_lse [B] or empty, diag [b]); with ``exclude_diagonal`` the diagonal is
    left out of both log-sum-exps.
    """
    acc = _opmath(text)
    t, v = text.to(acc), image.to(acc)
    if normalize:
        t, v = F.normalize(t, dim=1), F.normalize(v, dim=1)
    z = scale.to(acc) * (t @ v.T)
    diag = z.diagonal(diagonal_offset)
    if exclude_diagonal:
        rows = torch.arange(z.shape[0], device=z.device)[:, None]
        cols = torch.arange(z.shape[1], device=z.device)[None, :]
        z = z.masked_fill(cols == rows + diagonal_offset, float("-inf"))
    row_lse = torch.logsumexp(z, dim=1)
    col_lse = torch.logsumexp(z, dim=0) if with_columns else z.new_empty((0,))
    return row_lse, col_lse, diag
