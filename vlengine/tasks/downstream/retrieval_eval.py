"""Retrieval evaluation: full ITM ranking of every caption x image pair, and the two-stage mode
(dual-encoder top-k candidates per query, then ITM re-ranking of those only).

Both collate the captions once and the images once (``sides``) and build pair
batches by indexing (``pairs.pair_batch``), so the cost is the encoder forwards.
Two-stage scores the union of each caption's k best images and each image's k
best captions: at most (captions + images) x k ITM passes instead of
captions x images, plus one dual-encoder pass per caption and per image. Pairs
left out are -inf for ``vlengine.metrics.retrieval_protocol`` (a query whose own
pair is not among its candidates is a miss).
"""

from __future__ import annotations

import torch

from vlengine.data.batch import VLBatch
from vlengine.metrics.retrieval_protocol import retrieval_metrics

from .collate import collate_downstream
from .pairs import pair_batch


def sides(dataset, pad_id: int = 0) -> tuple[VLBatch, VLBatch]:
    """(all captions as one text batch, all images as one region batch), in dataset order.

    Held in host memory: e.g. Flickr30K test, 1K images x 36 regions x 2048 float16, is 150 MB."""
    texts = collate_downstream([dataset.caption_item(i) for i in range(len(dataset))], pad_id)
    images = collate_downstream([dataset.image_item(j) for j in range(dataset.num_images)], pad_id)
    return texts, images


@torch.no_grad()
def score_pairs(model, texts: VLBatch, images: VLBatch, text_rows: torch.Tensor, image_rows: torch.Tensor,
                batch_size: int, device, cast=lambda b: b) -> torch.Tensor:
    """ITM scores of the given (caption, image) pairs, ``batch_size`` pairs per forward."""
    out = torch.empty(text_rows.numel(), dtype=torch.float32)
    for start in range(0, text_rows.numel(), batch_size):
        stop = start + batch_size
        batch = pair_batch(texts, text_rows[start:stop], images, image_rows[start:stop])
        out[start:stop] = model.itm_scores(cast(batch.to(device))).float().cpu()
    return out


def full_itm_scores(model, texts: VLBatch, images: VLBatch, batch_size: int = 256, device="cpu",
                    cast=lambda b: b) -> torch.Tensor:
    """[captions, images] ITM scores of every pair (captions x images forwards)."""
    n_text, n_image = texts.batch_size, images.batch_size
    flat = torch.arange(n_text * n_image)
    scores = score_pairs(model, texts, images, flat // n_image, flat % n_image, batch_size, device, cast)
    return scores.view(n_text, n_image)


@torch.no_grad()
def embed_all(embed, side: VLBatch, batch_size: int, device, cast=lambda b: b) -> torch.Tensor:
    rows = torch.arange(side.batch_size)
    parts = []
    for start in range(0, side.batch_size, batch_size):
        chunk = rows[start:start + batch_size]
        fields = {name: value[chunk] for name, value in vars(side).items() if torch.is_tensor(value)}
        parts.append(embed(cast(side.replace(**fields, extras=None).to(device))).float().cpu())
    return torch.cat(parts)


def top_k_candidates(text_emb: torch.Tensor, image_emb: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """[pairs, 2] (caption, image) rows: each caption's k most similar images and each image's k most
    similar captions, deduplicated; the similarity matrix is formed ``chunk`` rows at a time."""
    n_text, n_image = text_emb.shape[0], image_emb.shape[0]
    picked = torch.zeros(n_text, n_image, dtype=torch.bool)
    for start in range(0, n_text, chunk):
        sim = text_emb[start:start + chunk] @ image_emb.T
        idx = sim.topk(min(k, n_image), dim=1).indices
        picked[start:start + chunk].scatter_(1, idx, True)
    for start in range(0, n_image, chunk):
        sim = image_emb[start:start + chunk] @ text_emb.T
        idx = sim.topk(min(k, n_text), dim=1).indices
        picked[:, start:start + chunk] |= torch.zeros(sim.shape, dtype=torch.bool).scatter_(1, idx, True).T
    return picked.nonzero()


def two_stage_scores(model, texts: VLBatch, images: VLBatch, k: int, batch_size: int = 256, device="cpu",
                     cast=lambda b: b) -> dict:
    """``{"scores" [captions, images] (-inf where not re-ranked), "itm_pairs", "text_emb", "image_emb"}``."""
    if k < 1:
        raise ValueError(f"k (candidates per query) must be >= 1, got {k}")
    text_emb = embed_all(model.embed_text, texts, batch_size, device, cast)
    image_emb = embed_all(model.embed_image, images, batch_size, device, cast)
    pairs = top_k_candidates(text_emb, image_emb, k)
    scores = torch.full((texts.batch_size, images.batch_size), float("-inf"))
    scores[pairs[:, 0], pairs[:, 1]] = score_pairs(model, texts, images, pairs[:, 0], pairs[:, 1], batch_size,
                                                   device, cast)
    return {"scores": scores, "itm_pairs": int(pairs.shape[0]), "text_emb": text_emb, "image_emb": image_emb}


def evaluate_retrieval(model, dataset, mode: str = "both", k: int = 128, batch_size: int = 256, device="cpu",
                       num_folds: int = 1, cast=lambda b: b) -> dict:
    """The protocol's recalls (percent) of ``mode`` = "full", "two_stage" or "both" side by side,
    with the dual encoder's own recall and the number of ITM passes each mode ran."""
    if mode not in ("full", "two_stage", "both"):
        raise ValueError(f"retrieval mode must be 'full', 'two_stage' or 'both', got {mode!r}")
    model_was_training = model.training
    model.eval()
    try:
        texts, images = sides(dataset)
        owner = dataset.text_to_image
        out = {"captions": texts.batch_size, "images": images.batch_size}
        if mode in ("full", "both"):
            scores = full_itm_scores(model, texts, images, batch_size, device, cast)
            out["full"] = retrieval_metrics(scores=scores, text_to_image=owner, num_folds=num_folds)
            out["full_itm_pairs"] = scores.numel()
        if mode in ("two_stage", "both"):
            two = two_stage_scores(model, texts, images, k, batch_size, device, cast)
            out["two_stage"] = retrieval_metrics(scores=two["scores"], text_to_image=owner, num_folds=num_folds)
            out["dual_encoder"] = retrieval_metrics(text=two["text_emb"], image=two["image_emb"], text_to_image=owner,
                                                    num_folds=num_folds)
            out["two_stage_itm_pairs"] = two["itm_pairs"]
            out["k"] = k
        return out
    finally:
        model.train(model_was_training)
