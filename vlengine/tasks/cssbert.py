"""CSS-BERT pretraining (Mo, Xia, Markevych): MLM + NSP + pair-wise contrastive loss (PwCL).

* NSP: the pretraining loader gives caption-image pairs, not sentence pairs, so
  "next sentence" is read as "this caption belongs to this image" on the pooled
  [CLS] output, with BERT's label convention (0 = belongs, 1 = random); the
  loader's ITM negatives supply the random half.
* PwCL: `vlengine.ops.contrastive_loss(kind="pwcl")` over the B x B matrix of
  projected sentence (E') and image (F') embeddings of the matched pairs, formed
  over exp(s / tau) (the printed formula puts raw dot products inside a log,
  undefined when a sum is negative). With data parallelism the op gathers
  across ranks, so B is the global batch (1024 in the large-batch recipe).
"""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import NSPHead

from .base import Masker, PretrainObjective
from .output import TaskOutput
from .terms import pair_term, positive_rows


class CSSBertPretraining(PretrainObjective):
    tasks = ("pretrain",)
    paper = "CSS-BERT"

    def __init__(self, model: nn.Module, masker: Masker, nsp_weight: float = 1.0, pwcl_weight: float = 1.0,
                 temperature: float = 0.07, kind: str = "pwcl", distributed: bool = True):
        super().__init__(model, masker)
        config = model.config
        self.nsp = NSPHead(config)
        self.nsp_weight, self.pwcl_weight = float(nsp_weight), float(pwcl_weight)
        self.temperature, self.kind, self.distributed = float(temperature), kind, distributed

    def forward(self, batch: VLBatch, task: str = "pretrain") -> TaskOutput:
        from vlengine.ops import contrastive_loss

        self.check_task(task)
        out = self.model(batch)
        loss, metrics = self.mlm_term(out.text, batch)
        if batch.itm_label is not None and self.nsp_weight > 0:
            rows = batch.image_rows
            nsp_loss, m = pair_term(self.nsp(out.pooled[rows]), 1 - batch.itm_label[rows], "nsp")
            loss = loss + self.nsp_weight * nsp_loss
            metrics.update(m)
        if self.pwcl_weight > 0 and "sentence_embedding" in out.extras:
            rows = positive_rows(batch)
            group = None
            if self.distributed and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
                group = torch.distributed.group.WORLD
                rows = _first_k_on_every_rank(rows, group)
            e, f = out.extras["sentence_embedding"], out.extras["image_embedding"]
            # PwCL's denominator sums over i != j: it needs two matched pairs (the count is the
            # same on every rank: it was agreed above)
            if int(rows.sum()) >= 2:
                pwcl = contrastive_loss(e[rows], f[rows], self.temperature, kind=self.kind, normalize=False,
                                        group=group)
                metrics["pwcl_loss"] = pwcl.detach().float()
            else:  # fewer than two matched pairs in this step: a zero that still reaches the projection
                pwcl = (e.sum() + f.sum()) * 0.0
                metrics["pwcl_loss"] = torch.tensor(float("nan"))
            loss = loss + self.pwcl_weight * pwcl
        return TaskOutput(loss, metrics)


def _first_k_on_every_rank(rows: torch.Tensor, group) -> torch.Tensor:
    """Keep the first k selected rows, k = the smallest selection over ranks: the gathered
    contrastive op needs the same number of pairs from every rank."""
    count = rows.sum().reshape(1).to(torch.int64)
    torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN, group=group)
    return rows & (rows.cumsum(0) <= count)
