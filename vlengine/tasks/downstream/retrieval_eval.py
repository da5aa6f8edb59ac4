"""Retrieval evaluation: full ITM ranking of every caption x image pair, and the two-stage mode
(dual-encoder top-k candidates per query, then ITM re-ranking of those only).

Both collate the captions once and the images once (``sides``) and build pair
batches by indexing (``pairs.pair_batch``), so the cost is the encoder forwards.
Two-stage scores the union of each caption's k best images and each image's k
best captions: at most (captions + images) x k ITM passes instead of
captions x images, plus one dual-encoder pass per caption and per image. Pairs
left out are -inf for ``vlengine.metrics.retrieval_protocol`` (a query whose own
pair is not among its candidates is a miss).

Over data-parallel ranks (torch.distributed initialised), each rank embeds a
contiguous share of the captions and images (all-gathered: every rank then
picks the same candidates) and scores a contiguous share of the pairs
(gathered on rank 0 in rank order): every pair is scored exactly once, and
rank 0 returns the same scores as one process. Other ranks return None.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from vlengine.batch import VLBatch
from vlengine.metrics.retrieval_protocol import retrieval_metrics

from .collate import collate_downstream
from .pairs import pair_batch
from .sharding import _world, shard_range


def _sharded(fn, n: int, group, everywhere: bool):
    """``fn(range)`` -> tensor on this rank's share of 0..n-1, concatenated in order over ranks: on
    every rank (``everywhere``) or on rank 0 only (None elsewhere)."""
    rank, world = _world(group)
    local = fn(shard_range(n, rank, world))
    if world == 1:
        return local
    if everywhere:
        parts = [None] * world
        dist.all_gather_object(parts, local, group=group)
        return torch.cat([p for p in parts if p.numel()] or parts[:1])
    parts = [None] * world if rank == 0 else None
    dst = 0 if group is None else dist.get_global_rank(group, 0)
    dist.gather_object(local, parts, dst=dst, group=group)
    return torch.cat([p for p in parts if p.numel()] or parts[:1]) if rank == 0 else None


def sides(dataset) -> tuple[VLBatch, VLBatch]:
    """(all captions as one text batch, all images as one region batch), in dataset order.

    Held in host memory: e.g. Flickr30K test, 1K images x 36 regions x 2048 float16, is 150 MB."""
    pad_id = dataset.tokenizer.pad_id
    texts = collate_downstream([dataset.caption_item(i) for i in range(len(dataset))], pad_id)
    images = collate_downstream([dataset.image_item(j) for j in range(dataset.num_images)], pad_id)
    return texts, images


@torch.no_grad()
def score_pairs(model, texts: VLBatch, images: VLBatch, text_rows: torch.Tensor, image_rows: torch.Tensor,
                batch_size: int, device, cast=lambda b: b, group=None) -> torch.Tensor | None:
    """ITM scores of the given (caption, image) pairs, ``batch_size`` pairs per forward (sharded
    over ranks: rank 0 gets all scores, the others None)."""
    def local(share: range) -> torch.Tensor:
        out = torch.empty(len(share), dtype=torch.float32)
        for start in range(0, len(share), batch_size):
            rows = torch.arange(share.start + start, min(share.start + start + batch_size, share.stop))
            batch = pair_batch(texts, text_rows[rows], images, image_rows[rows])
            out[start:start + rows.numel()] = model.itm_scores(cast(batch.to(device))).float().cpu()
        return out
    return _sharded(local, text_rows.numel(), group, everywhere=False)


def full_itm_scores(model, texts: VLBatch, images: VLBatch, batch_size: int = 256, device="cpu",
                    cast=lambda b: b, group=None) -> torch.Tensor | None:
    """[captions, images] ITM scores of every pair (captions x images forwards), on rank 0."""
    n_text, n_image = texts.batch_size, images.batch_size
    flat = torch.arange(n_text * n_image)
    scores = score_pairs(model, texts, images, flat // n_image, flat % n_image, batch_size, device, cast, group)
    return None if scores is None else scores.view(n_text, n_image)


@torch.no_grad()
def embed_all(embed, side: VLBatch, batch_size: int, device, cast=lambda b: b, group=None) -> torch.Tensor:
    """[rows, d] embeddings of every row of ``side``, on every rank (each rank embeds its share)."""
    def local(share: range) -> torch.Tensor:
        parts = [torch.zeros(0)]
        for start in range(share.start, share.stop, batch_size):
            chunk = torch.arange(start, min(start + batch_size, share.stop))
            fields = {name: value[chunk] for name, value in vars(side).items() if torch.is_tensor(value)}
            parts.append(embed(cast(side.replace(**fields, extras=None).to(device))).float().cpu())
        return torch.cat(parts) if len(parts) > 1 else parts[0]
    return _sharded(local, side.batch_size, group, everywhere=True)


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
                     cast=lambda b: b, group=None) -> dict | None:
    """``{"scores" [captions, images] (-inf where not re-ranked), "itm_pairs", "text_emb", "image_emb"}``
    on rank 0 (None on the other ranks)."""
    if k < 1:
        raise ValueError(f"k (candidates per query) must be >= 1, got {k}")
    text_emb = embed_all(model.embed_text, texts, batch_size, device, cast, group)
    image_emb = embed_all(model.embed_image, images, batch_size, device, cast, group)
    pairs = top_k_candidates(text_emb, image_emb, k)
    picked = score_pairs(model, texts, images, pairs[:, 0], pairs[:, 1], batch_size, device, cast, group)
    if picked is None:
        return None
    scores = torch.full((texts.batch_size, images.batch_size), float("-inf"))
    scores[pairs[:, 0], pairs[:, 1]] = picked
    return {"scores": scores, "itm_pairs": int(pairs.shape[0]), "text_emb": text_emb, "image_emb": image_emb}


def evaluate_retrieval(model, dataset, mode: str = "both", k: int = 128, batch_size: int = 256, device="cpu",
                       num_folds: int = 1, cast=lambda b: b, group=None) -> dict | None:
    """The protocol's recalls (percent) of ``mode`` = "full", "two_stage" or "both" side by side,
    with the dual encoder's own recall and the number of ITM passes each mode ran (on rank 0;
    None on the other ranks). ``num_folds=5`` on COCO's 5K test images gives "COCO 1K"."""
    if mode not in ("full", "two_stage", "both"):
        raise ValueError(f"retrieval mode must be 'full', 'two_stage' or 'both', got {mode!r}")
    model_was_training = model.training
    model.eval()
    try:
        texts, images = sides(dataset)
        owner = dataset.text_to_image
        out = {"captions": texts.batch_size, "images": images.batch_size}
        leader = _world(group)[0] == 0
        if mode in ("full", "both"):
            scores = full_itm_scores(model, texts, images, batch_size, device, cast, group)
            if leader:
                out["full"] = retrieval_metrics(scores=scores, text_to_image=owner, num_folds=num_folds)
                out["full_itm_pairs"] = scores.numel()
        if mode in ("two_stage", "both"):
            two = two_stage_scores(model, texts, images, k, batch_size, device, cast, group)
        if mode in ("two_stage", "both") and leader:
            out["two_stage"] = retrieval_metrics(scores=two["scores"], text_to_image=owner, num_folds=num_folds)
            out["dual_encoder"] = retrieval_metrics(text=two["text_emb"], image=two["image_emb"], text_to_image=owner,
                                                    num_folds=num_folds)
            out["two_stage_itm_pairs"] = two["itm_pairs"]
            out["k"] = k
        return out if leader else None
    finally:
        model.train(model_was_training)
