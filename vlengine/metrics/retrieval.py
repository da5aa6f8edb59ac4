"""Image-text retrieval recall at K, ranked in tiles: no caption x image matrix in memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlengine.ops import _checks

# 2048 x 2048 float32 scores = 16 MiB per tile.
_TILE = 2048


def retrieval_recall(text: torch.Tensor, image: torch.Tensor, ks=(1, 5, 10), text_to_image: torch.Tensor | None = None,
                     *, normalize: bool = True, tile: int = _TILE) -> dict[str, dict[int, float]]:
    """Text->image and image->text recall at K of an evaluation set, as reported for Flickr30K and COCO.

    Scores are <t_c, v_j> (cosine when ``normalize``). A caption's rank is the
    number of images scoring strictly higher than its own image; an image's rank
    is the number of captions scoring strictly higher than its best-scoring
    caption (so ties count in the query's favour). R@K is the fraction of
    queries with rank < K. Scores are computed in [tile x tile] blocks, twice
    (one pass finds the ground-truth scores, one counts), so 1k images x 5k
    captions or 25k-candidate pools never hold a dense matrix.

    Args:
        text: [N_t, d] caption embeddings.
        image: [N_i, d] image embeddings (same dtype and device).
        ks: the K values, positive ints.
        text_to_image: [N_t] int64, the image index of each caption. When None:
            N_t == N_i pairs caption c with image c; N_t == m * N_i (m captions per
            image, Flickr30K/COCO's layout) pairs caption c with image c // m.
            Images with no caption are candidates for text->image but are not
            image->text queries.
        normalize: L2-normalise the embeddings first.
        tile: block size of the scoring passes.

    Returns:
        {"text_to_image": {K: recall}, "image_to_text": {K: recall}}, recalls in [0, 1].
    """
    op = "retrieval_recall"
    _checks.check_tensor(op, "text", text, ndim=2, floating=True)
    _checks.check_tensor(op, "image", image, ndim=2, floating=True)
    _checks.check_same_device(op, text=text, image=image)
    n_text, n_image = text.shape[0], image.shape[0]
    if text.shape[1] != image.shape[1]:
        raise ValueError(f"{op}: text and image must have the same embedding size d, got "
                         f"{text.shape[1]} and {image.shape[1]}")
    if n_text == 0 or n_image == 0:
        raise ValueError(f"{op}: need at least one caption and one image, got {n_text} and {n_image}")
    ks = _check_ks(op, ks)
    if int(tile) <= 0:
        raise ValueError(f"{op}: tile must be positive, got {tile}")
    tile = int(tile)
    owner = _caption_owners(op, text_to_image, n_text, n_image, text.device)
    for name, t in (("text", text), ("image", image)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{op}: {name} has a non-finite value (NaN or inf)")

    acc = torch.float64 if text.dtype == torch.float64 else torch.float32
    t, v = text.to(acc), image.to(acc)
    if normalize:
        t, v = F.normalize(t, dim=1), F.normalize(v, dim=1)

    # Pass 1: each caption's score with its own image, and each image's best caption score.
    caption_true = torch.empty(n_text, dtype=acc, device=text.device)
    image_best = torch.full((n_image,), float("-inf"), dtype=acc, device=text.device)
    for r0, c0, scores in _tiles(t, v, tile):
        rows = torch.arange(r0, r0 + scores.shape[0], device=text.device)
        local = owner[rows] - c0
        here = (local >= 0) & (local < scores.shape[1])
        values = scores[here.nonzero().squeeze(1), local[here]]
        caption_true[rows[here]] = values
        image_best.scatter_reduce_(0, owner[rows[here]], values, reduce="amax")

    # Pass 2: count the candidates that score strictly higher (same tiles: same values).
    caption_rank = torch.zeros(n_text, dtype=torch.int64, device=text.device)
    image_rank = torch.zeros(n_image, dtype=torch.int64, device=text.device)
    for r0, c0, scores in _tiles(t, v, tile):
        rows = slice(r0, r0 + scores.shape[0])
        cols = slice(c0, c0 + scores.shape[1])
        caption_rank[rows] += (scores > caption_true[rows, None]).sum(1)
        image_rank[cols] += (scores > image_best[None, cols]).sum(0)

    queried = torch.isfinite(image_best)  # images with at least one caption
    image_rank = image_rank[queried]
    return {
        "text_to_image": {k: float((caption_rank < k).double().mean()) for k in ks},
        "image_to_text": {k: float((image_rank < k).double().mean()) for k in ks},
    }


def _tiles(t: torch.Tensor, v: torch.Tensor, tile: int):
    for r0 in range(0, t.shape[0], tile):
        rows = t[r0:r0 + tile]
        for c0 in range(0, v.shape[0], tile):
            yield r0, c0, rows @ v[c0:c0 + tile].T


def _check_ks(op: str, ks) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in ks)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: ks must be a sequence of positive ints, got {ks!r}") from None
    if not ks or min(ks) <= 0:
        raise ValueError(f"{op}: ks must be a non-empty sequence of positive ints, got {ks!r}")
    return ks


def _caption_owners(op: str, text_to_image, n_text: int, n_image: int, device) -> torch.Tensor:
    if text_to_image is None:
        if n_text % n_image:
            raise ValueError(f"{op}: {n_text} captions for {n_image} images is not m captions per image; "
                             f"give text_to_image (the image index of each caption)")
        return torch.arange(n_text, device=device) // (n_text // n_image)
    _checks.check_tensor(op, "text_to_image", text_to_image, ndim=1)
    if text_to_image.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{op}: text_to_image must be an integer tensor, got {text_to_image.dtype}")
    if text_to_image.shape[0] != n_text:
        raise ValueError(f"{op}: text_to_image must have one entry per caption ({n_text}), "
                         f"got {text_to_image.shape[0]}")
    owner = text_to_image.to(device=device, dtype=torch.int64)
    bad = (owner < 0) | (owner >= n_image)
    if bool(bad.any()):
        c = int(bad.nonzero()[0])
        raise ValueError(f"{op}: text_to_image[{c}] = {int(owner[c])} is not an image index in [0, {n_image})")
    return owner
