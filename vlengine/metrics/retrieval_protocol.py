"""The Flickr30K / COCO retrieval protocol: R@1/5/10 both ways, their mean, COCO 1K (5 folds) and 5K.

Two score sources, one ranking rule:

* a score matrix ``[captions, images]`` (a cross-encoder's ITM scores, full or
  two-stage): :func:`recall_from_scores`. Pairs a two-stage run did not score
  are ``-inf``; a query whose own pair was not scored is a miss.
* caption and image embeddings (a dual encoder): the tiled
  ``retrieval_recall`` op, which never holds the whole matrix.

Ranking (both sources): a caption's rank is the number of images scoring
strictly higher than its own image; an image's rank is the number of captions
scoring strictly higher than its best-scoring caption (ties count in the
query's favour). R@K = fraction of queries with rank < K.

Reported as the papers do (percentages): ``text_to_image`` (image retrieval) and
``image_to_text`` (text retrieval) R@K, each direction's mean, ``r_mean`` (the
mean of the six, UNITER's) and ``rsum`` (their sum). COCO "1K test" is the
mean over 5 folds of 1,000 consecutive test images with their captions; "5K"
ranks all 5,000 at once.
"""

from __future__ import annotations

from typing import Callable

import torch

from .retrieval import retrieval_recall

DIRECTIONS = ("text_to_image", "image_to_text")


def _owners(text_to_image, n_text: int, n_image: int, device) -> torch.Tensor:
    if text_to_image is None:
        if n_image == 0 or n_text % n_image:
            raise ValueError(f"{n_text} captions for {n_image} images is not m captions per image; "
                             f"give text_to_image (the image index of each caption)")
        return torch.arange(n_text, device=device) // (n_text // n_image)
    owner = torch.as_tensor(text_to_image, device=device)
    if owner.dtype not in (torch.int64, torch.int32) or owner.shape != (n_text,):
        raise ValueError(f"text_to_image must be an integer tensor of shape [{n_text}], got "
                         f"{owner.dtype} {list(owner.shape)}")
    owner = owner.long()
    if n_text and (owner.min() < 0 or owner.max() >= n_image):
        raise ValueError(f"text_to_image has an entry outside [0, {n_image})")
    return owner


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) <= 0:
        raise ValueError(f"ks must be positive ints, got {ks}")
    return ks


def recall_from_scores(scores: torch.Tensor, text_to_image=None, ks=(1, 5, 10)) -> dict:
    """R@K in [0, 1] from a ``[captions, images]`` score matrix (higher = better match).

    ``-inf`` marks an unscored pair (e.g. outside a two-stage run's candidates);
    NaN is an error. Images without a caption are candidates but not queries.
    """
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be a non-empty [captions, images] matrix, got {list(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    ks = _check_ks(ks)
    n_text, n_image = scores.shape
    owner = _owners(text_to_image, n_text, n_image, scores.device)
    rows = torch.arange(n_text, device=scores.device)
    own = scores[rows, owner]
    caption_rank = (scores > own[:, None]).sum(1)
    caption_rank[~torch.isfinite(own)] = n_image  # its own image was never scored: a miss
    best = torch.full((n_image,), float("-inf"), dtype=scores.dtype, device=scores.device)
    best.scatter_reduce_(0, owner, own, reduce="amax")
    queried = torch.zeros(n_image, dtype=torch.bool, device=scores.device)
    queried[owner] = True
    image_rank = (scores > best[None, :]).sum(0)
    image_rank[~torch.isfinite(best)] = n_text
    image_rank = image_rank[queried]
    return {"text_to_image": {k: float((caption_rank < k).double().mean()) for k in ks},
            "image_to_text": {k: float((image_rank < k).double().mean()) for k in ks}}


def recall_from_embeddings(text: torch.Tensor, image: torch.Tensor, text_to_image=None, ks=(1, 5, 10),
                           normalize: bool = True) -> dict:
    """R@K in [0, 1] of a dual encoder's embeddings (cosine when ``normalize``), never
    materialising the caption x image matrix."""
    owner = _owners(text_to_image, text.shape[0], image.shape[0], text.device)
    return retrieval_recall(text, image, ks=_check_ks(ks), text_to_image=owner, normalize=normalize)


def fold_average(recall_fn: Callable, n_image: int, text_to_image: torch.Tensor, num_folds: int) -> dict:
    """Mean over ``num_folds`` folds of consecutive images of ``recall_fn(image_index, caption_index,
    local_owner)``; each fold keeps the captions of its images (COCO 1K: 5 folds of 5K)."""
    if num_folds <= 0 or n_image % num_folds:
        raise ValueError(f"{n_image} images do not split into {num_folds} equal folds")
    size = n_image // num_folds
    per_fold = []
    for f in range(num_folds):
        in_fold = (text_to_image >= f * size) & (text_to_image < (f + 1) * size)
        caption_index = in_fold.nonzero().squeeze(1)
        if caption_index.numel() == 0:
            raise ValueError(f"fold {f} (images {f * size}..{(f + 1) * size - 1}) has no caption")
        image_index = torch.arange(f * size, (f + 1) * size, device=text_to_image.device)
        per_fold.append(recall_fn(image_index, caption_index, text_to_image[caption_index] - f * size))
    return {d: {k: sum(r[d][k] for r in per_fold) / num_folds for k in per_fold[0][d]} for d in DIRECTIONS}


def summarize(recalls: dict) -> dict:
    """Recalls in [0, 1] -> the papers' table row in percent: R@K per direction, each
    direction's mean, ``r_mean`` (mean of all) and ``rsum`` (sum of all)."""
    out = {}
    values = []
    for d in DIRECTIONS:
        row = {f"R@{k}": 100.0 * r for k, r in recalls[d].items()}
        out[d] = row
        out[f"{d}_mean"] = sum(row.values()) / len(row)
        values.extend(row.values())
    out["r_mean"] = sum(values) / len(values)
    out["rsum"] = sum(values)
    return out


def retrieval_metrics(scores: torch.Tensor | None = None, text: torch.Tensor | None = None,
                      image: torch.Tensor | None = None, text_to_image=None, ks=(1, 5, 10), num_folds: int = 1,
                      normalize: bool = True) -> dict:
    """The protocol's table row from either a score matrix or embeddings; ``num_folds=5`` on the
    COCO 5K test set gives "COCO 1K", ``num_folds=1`` the full set (Flickr30K 1K, COCO 5K)."""
    if (scores is None) == (text is None or image is None):
        raise ValueError("give either scores, or text and image embeddings")
    if scores is not None:
        n_text, n_image, device = scores.shape[0], scores.shape[1], scores.device
        fn = lambda img, cap, own: recall_from_scores(scores[cap][:, img], own, ks)
    else:
        n_text, n_image, device = text.shape[0], image.shape[0], text.device
        fn = lambda img, cap, own: recall_from_embeddings(text[cap], image[img], own, ks, normalize)
    owner = _owners(text_to_image, n_text, n_image, device)
    return summarize(fold_average(fn, n_image, owner, num_folds))


def coco_1k_and_5k(**kwargs) -> dict:
    """``{"1k": ..., "5k": ...}`` for the COCO 5K test set (same arguments as :func:`retrieval_metrics`)."""
    kwargs.pop("num_folds", None)
    return {"1k": retrieval_metrics(num_folds=5, **kwargs), "5k": retrieval_metrics(num_folds=1, **kwargs)}
