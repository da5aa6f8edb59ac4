"""Image-text retrieval: a cross-encoder (the ITM head on the pooled output) and a dual encoder
(CSS-BERT's contrastive projections), on one backbone.

Training (``objective``):
* ``"itm"``: each matched pair of the batch, plus for every caption a negative
  image and for every image a negative caption drawn from the batch,
  cross-entropy over match / no match. ``negatives="hard"`` draws them hard:
  by the dual-encoder similarity when the projections train too (ALBEF's
  sampling, softmax over similarities), otherwise by the ITM score of
  ``hard_candidates`` sampled in-batch candidates, the highest kept
  (UNITER's sample-then-keep-the-hardest). ``"random"`` draws uniformly.
* ``"contrastive"``: the tiled ``vlengine.ops.contrastive_loss`` over the
  projected sentence (text-only pass) and image ([CLS] + regions pass) embeddings.
* ``"both"``: their sum (what the two-stage evaluation wants: a trained dual
  encoder to choose candidates, a trained cross-encoder to rank them).
Pairs whose caption and image come from one image are never negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import ContrastiveProjection, ITMHead
from vlengine.models.init import init_bert_weights

from ..output import TaskOutput, accuracy
from .backbone import encode
from .pairs import cls_only, pair_batch, text_only

OBJECTIVES = ("itm", "contrastive", "both")
NEGATIVES = ("hard", "random")


class RetrievalModel(nn.Module):
    """``loss(batch)``, ``itm_scores(pairs)``, ``embed_text(texts)``, ``embed_image(images)``.

    Args:
        backbone: a vlengine.models architecture (VL-BERT, CSS-BERT, ...).
        itm_head: a pretrained ITM head to start from (zero-shot retrieval uses it untrained on
            the task); a fresh one otherwise.
        projection: a pretrained ContrastiveProjection; else the backbone's own (CSS-BERT) or a fresh one.
        temperature, kind: of the contrastive loss ("infonce" or CSS-BERT's "pwcl").
    """

    def __init__(self, backbone: nn.Module, objective: str = "itm", negatives: str = "hard", hard_candidates: int = 8,
                 temperature: float = 0.07, kind: str = "infonce", itm_head: nn.Module | None = None,
                 projection: nn.Module | None = None, distributed: bool = True):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"retrieval objective must be one of {OBJECTIVES}, got {objective!r}")
        if negatives not in NEGATIVES:
            raise ValueError(f"retrieval negatives must be one of {NEGATIVES}, got {negatives!r}")
        if hard_candidates < 1:
            raise ValueError(f"hard_candidates must be >= 1, got {hard_candidates}")
        self.backbone = backbone
        config = backbone.config
        if itm_head is None:
            itm_head = ITMHead(config)
            init_bert_weights(itm_head, config.initializer_range)
        self.itm = itm_head
        if projection is None and not isinstance(getattr(backbone, "projection", None), ContrastiveProjection):
            projection = ContrastiveProjection(config)
            init_bert_weights(projection, config.initializer_range)
        self.projection = projection        # None: the backbone's own (CSS-BERT), under backbone.*
        self.objective, self.negatives, self.hard_candidates = objective, negatives, int(hard_candidates)
        self.temperature, self.kind, self.distributed = float(temperature), kind, distributed

    # ---- scores and embeddings ----
    def _projection(self) -> ContrastiveProjection:
        return self.projection if self.projection is not None else self.backbone.projection

    def itm_logits(self, pairs: VLBatch) -> torch.Tensor:
        return self.itm(encode(self.backbone, pairs).pooled)

    def itm_scores(self, pairs: VLBatch) -> torch.Tensor:
        """[B] match score of each (caption, image) row: the margin of "match" over "no match"."""
        logits = self.itm_logits(pairs).float()
        return logits[:, 1] - logits[:, 0]

    def embed_text(self, texts: VLBatch) -> torch.Tensor:
        """[B, d] sentence embeddings from a text-only pass (pooled [CLS])."""
        proj = self._projection()
        e = proj.text(encode(self.backbone, text_only(texts)).pooled)
        return F.normalize(e, dim=-1) if proj.normalize else e

    def embed_image(self, images: VLBatch) -> torch.Tensor:
        """[B, d] image embeddings from a [CLS] + regions pass (mean of the region outputs)."""
        proj = self._projection()
        f = proj.image(encode(self.backbone, cls_only(images)).image)
        return F.normalize(f, dim=-1) if proj.normalize else f

    # ---- training ----
    def loss(self, batch: VLBatch) -> TaskOutput:
        b = batch.batch_size
        image_of = (batch.extras or {}).get("image_index")
        if image_of is None or image_of.shape != (b,):
            raise ValueError("retrieval loss needs each row's image (batch.extras['image_index'])")
        allowed = image_of[:, None] != image_of[None, :]         # [caption, image] pairs that may be negatives
        metrics, loss = {}, None
        text_emb = image_emb = None
        if self.objective in ("contrastive", "both"):
            text_emb, image_emb = self.embed_text(batch), self.embed_image(batch)
            con = self._contrastive(text_emb, image_emb)
            metrics["contrastive_loss"] = con.detach().float()
            loss = con
        if self.objective in ("itm", "both"):
            itm, itm_metrics = self._itm_loss(batch, allowed, text_emb, image_emb)
            metrics.update(itm_metrics)
            loss = itm if loss is None else loss + itm
        return TaskOutput(loss, metrics)

    def _contrastive(self, text_emb: torch.Tensor, image_emb: torch.Tensor) -> torch.Tensor:
        from vlengine.ops import contrastive_loss

        group = None
        if self.distributed and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            group = torch.distributed.group.WORLD   # every rank must pass the same number of pairs
        return contrastive_loss(text_emb, image_emb, self.temperature, kind=self.kind, normalize=False, group=group)

    def _itm_loss(self, batch: VLBatch, allowed: torch.Tensor, text_emb, image_emb):
        rows = torch.arange(batch.batch_size, device=allowed.device)
        neg_image, has_neg_image = self._pick_negatives(batch, allowed, text_emb, image_emb)
        neg_text, has_neg_text = self._pick_negatives(batch, allowed.T, image_emb, text_emb, images_side=True)
        text_rows = torch.cat([rows, rows[has_neg_image], neg_text[has_neg_text]])
        image_rows = torch.cat([rows, neg_image[has_neg_image], rows[has_neg_text]])
        labels = torch.cat([torch.ones_like(rows), torch.zeros(int(has_neg_image.sum()) + int(has_neg_text.sum()),
                                                               dtype=torch.int64, device=rows.device)])
        logits = self.itm_logits(pair_batch(batch, text_rows, batch, image_rows))
        loss = F.cross_entropy(logits.float(), labels).to(logits.dtype)
        return loss, {"itm_loss": loss.detach().float(), "itm_acc": accuracy(logits.detach(), labels)}

    @torch.no_grad()
    def _pick_negatives(self, batch: VLBatch, allowed: torch.Tensor, query_emb, key_emb, images_side: bool = False):
        """For each query row (a caption, or an image when ``images_side``), one key row of the batch
        it may be paired with as a negative; (keys [B], has_negative [B])."""
        has = allowed.any(1)
        if self.negatives == "random":
            weights = allowed.float()
        elif query_emb is not None:
            sim = (query_emb.float() @ key_emb.float().T) / self.temperature
            weights = torch.softmax(sim.masked_fill(~allowed, float("-inf")), dim=1).nan_to_num(0.0)
            weights = torch.where(allowed, weights.clamp_min(1e-12), weights)
        else:
            return self._hardest_by_itm(batch, allowed, images_side), has
        weights = torch.where(has[:, None], weights, torch.ones_like(weights))
        return torch.multinomial(weights, 1).squeeze(1), has

    def _hardest_by_itm(self, batch: VLBatch, allowed: torch.Tensor, images_side: bool) -> torch.Tensor:
        """Sample up to ``hard_candidates`` allowed keys per query, score them with the ITM head, keep the best."""
        b = allowed.shape[0]
        c = min(self.hard_candidates, b)
        draw = torch.rand(allowed.shape, device=allowed.device).masked_fill(~allowed, -1.0)
        cand = draw.topk(c, dim=1).indices                                 # [B, c]
        ok = allowed.gather(1, cand)
        query = torch.arange(b, device=allowed.device)[:, None].expand(b, c)
        q, k = query[ok], cand[ok]
        text_rows, image_rows = (k, q) if images_side else (q, k)
        scores = torch.full((b, c), float("-inf"), device=allowed.device)
        if q.numel():
            scores[ok] = self.itm_scores(pair_batch(batch, text_rows, batch, image_rows)).to(scores.device)
        return cand.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)

    @torch.no_grad()
    def predict(self, batch: VLBatch) -> torch.Tensor:
        return self.itm_scores(batch)

    def forward(self, batch: VLBatch, task: str | None = None) -> TaskOutput:
        return self.loss(batch)
