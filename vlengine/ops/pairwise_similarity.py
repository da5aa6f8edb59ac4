"""The dense B_t x B_v similarity matrix of sentence and image embeddings, for small batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks
from ._descriptor import OpDescriptor
from ._registry import register


def pairwise_similarity(text: torch.Tensor, image: torch.Tensor, scale: float = 1.0, *,
                        normalize: bool = False) -> torch.Tensor:
    """``scale * text @ image.T``: CSS-BERT's matrix of E'_i . F'_j, materialised.

    For inspection, small batches and tests: it holds B_t x B_v values. The
    losses and the retrieval metrics never build it (see
    ``vlengine.ops.contrastive_loss`` and ``vlengine.metrics.retrieval_recall``).

    Args:
        text: [B_t, d] sentence embeddings.
        image: [B_v, d] image embeddings, same dtype and device.
        scale: multiplies every entry (1 / temperature gives the logits).
        normalize: L2-normalise the rows first (cosine similarity).

    Returns:
        [B_t, B_v] in the inputs' dtype; float16/bfloat16 products accumulate in float32.
    """
    op = "pairwise_similarity"
    _checks.check_tensor(op, "text", text, ndim=2, floating=True)
    _checks.check_tensor(op, "image", image, ndim=2, floating=True)
    _checks.check_same_device(op, text=text, image=image)
    if text.dtype != image.dtype:
        raise TypeError(f"{op}: text and image must have one dtype, got {text.dtype} and {image.dtype}")
    if text.shape[1] != image.shape[1]:
        raise ValueError(f"{op}: text and image must have the same embedding size d, got "
                         f"{text.shape[1]} and {image.shape[1]}")
    scale = float(scale)
    if scale != scale or scale in (float("inf"), float("-inf")):
        raise ValueError(f"{op}: scale must be finite, got {scale}")
    acc = torch.float64 if text.dtype == torch.float64 else torch.float32
    t, v = text.to(acc), image.to(acc)
    if normalize:
        t, v = F.normalize(t, dim=1), F.normalize(v, dim=1)
    return (scale * (t @ v.T)).to(text.dtype)


DESCRIPTOR = register(OpDescriptor(
    name="pairwise_similarity",
    summary="the dense B_t x B_v similarity matrix (pure PyTorch, for small batches and inspection)",
    reference=pairwise_similarity,
))
