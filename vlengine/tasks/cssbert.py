"""CSS-BERT pretraining (Mo, Xia, Markevych): MLM + NSP + pair-wise contrastive loss (PwCL).

* NSP: the pretraining loader gives caption-image pairs, not sentence pairs, so
  "next sentence" is read as "this caption belongs to this image" on the pooled
  [CLS] output, with BERT's label convention (0 = belongs, 1 = random). The
  random half comes from the loader's ITM negatives (``nsp_negatives="loader"``),
  or is formed in the batch (``"in_batch"``, the paper's form): the loader gives
  matched pairs only, half of the rows are paired with another row's image for
  the joint pass, and the contrastive passes read every row's own pair.
* PwCL: `vlengine.ops.contrastive_loss(kind="pwcl")` over the B x B matrix of
  projected sentence (E') and image (F') embeddings of the matched pairs (with
  loader negatives about B/2 of them; in-batch negatives keep all B), formed
  over exp(s / tau) (the printed formula puts raw dot products inside a log,
  undefined when a sum is negative). With data parallelism the op gathers
  across ranks, so B is the global batch (1024 in the large-batch recipe).
  ``kind="pwcl_printed"`` is the printed ratio itself, on one rank's batch,
  where it is defined (``printed_pwcl``).
"""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import NSPHead

from .base import Masker, PretrainObjective
from .output import TaskOutput
from .terms import pair_term, positive_rows

NSP_NEGATIVES = ("loader", "in_batch")
_IMAGE_FIELDS = ("region_features", "region_boxes", "region_valid", "region_labels", "region_soft_labels",
                 "image_size", "images", "region_masked", "region_targets")


class CSSBertPretraining(PretrainObjective):
    tasks = ("pretrain",)
    paper = "CSS-BERT"

    def __init__(self, model: nn.Module, masker: Masker, nsp_weight: float = 1.0, pwcl_weight: float = 1.0,
                 temperature: float = 0.07, kind: str = "pwcl", distributed: bool = True,
                 nsp_negatives: str = "loader"):
        super().__init__(model, masker)
        if nsp_negatives not in NSP_NEGATIVES:
            raise ValueError(f"CSSBertPretraining: nsp_negatives must be one of {NSP_NEGATIVES}, got {nsp_negatives!r}")
        self.nsp_negatives = nsp_negatives
        config = model.config
        self.nsp = NSPHead(config)
        self.nsp_weight, self.pwcl_weight = float(nsp_weight), float(pwcl_weight)
        self.temperature, self.kind, self.distributed = float(temperature), kind, distributed

    def prepare_batch(self, batch: VLBatch, task: str, generator: torch.Generator) -> VLBatch:
        """With in-batch NSP negatives: draw them (labels before masking, so that conditional masking
        treats them as it treats the loader's), then mask."""
        if self.nsp_negatives == "in_batch":
            batch = with_in_batch_negatives(batch, generator)
        return super().prepare_batch(batch, task, generator)

    def forward(self, batch: VLBatch, task: str = "pretrain") -> TaskOutput:
        self.check_task(task)
        image_from = (batch.extras or {}).get("nsp_image_from")
        if image_from is not None:   # joint pass on the re-paired rows, contrastive passes on the own pairs
            out = self.model(paired_with_images(batch, image_from), contrastive_batch=batch)
            contrastive_rows = batch.image_rows
        else:
            out = self.model(batch)
            contrastive_rows = positive_rows(batch)
        loss, metrics = self.mlm_term(out.text, batch)
        if batch.itm_label is not None and self.nsp_weight > 0:
            rows = batch.image_rows
            nsp_loss, m = pair_term(self.nsp(out.pooled[rows]), 1 - batch.itm_label[rows], "nsp")
            loss = loss + self.nsp_weight * nsp_loss
            metrics.update(m)
        if self.pwcl_weight > 0 and "sentence_embedding" in out.extras:
            pwcl, metrics["pwcl_loss"] = self._pwcl_term(out.extras["sentence_embedding"],
                                                         out.extras["image_embedding"], contrastive_rows)
            loss = loss + self.pwcl_weight * pwcl
        return TaskOutput(loss, metrics)

    def _pwcl_term(self, e: torch.Tensor, f: torch.Tensor, rows: torch.Tensor):
        """(loss, logged value) of the contrastive term over the pairs in ``rows``; a step where it is
        not defined adds a zero that still reaches the projection, and logs NaN."""
        from vlengine.ops import contrastive_loss

        group = None
        if self.distributed and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            if self.kind == "pwcl_printed":
                raise ValueError("objective.kind 'pwcl_printed' is computed over one rank's batch: set "
                                 "objective.distributed to false")
            group = torch.distributed.group.WORLD
            rows = _first_k_on_every_rank(rows, group)
        nothing = (e.sum() + f.sum()) * 0.0, torch.tensor(float("nan"))
        # PwCL's denominator sums over i != j: it needs two matched pairs (the count is the
        # same on every rank: it was agreed above)
        if int(rows.sum()) < 2:
            return nothing
        if self.kind == "pwcl_printed":
            pwcl = printed_pwcl(e[rows], f[rows])
            if pwcl is None:
                return nothing
        else:
            pwcl = contrastive_loss(e[rows], f[rows], self.temperature, kind=self.kind, normalize=False,
                                    group=group)
        return pwcl, pwcl.detach().float()


def printed_pwcl(e: torch.Tensor, f: torch.Tensor) -> torch.Tensor | None:
    """The poster's PwCL as printed, -log(sum_i E_i.F_i / sum_{i != j} E_i.F_j), in O(B d) (the
    off-diagonal sum is (sum_i E_i).(sum_j F_j) minus the diagonal). None where the log is not
    defined: a sum <= 0. The temperature cancels in the ratio. It is bounded below by nothing: an
    off-diagonal sum falling to 0+ sends it to -inf, one reason the exp(s / tau) form is the default."""
    e, f = e.float(), f.float()
    matched = (e * f).sum()
    others = e.sum(0) @ f.sum(0) - matched
    if bool(matched <= 0) or bool(others <= 0):
        return None
    return others.log() - matched.log()


def _first_k_on_every_rank(rows: torch.Tensor, group) -> torch.Tensor:
    """Keep the first k selected rows, k = the smallest selection over ranks: the gathered
    contrastive op needs the same number of pairs from every rank."""
    count = rows.sum().reshape(1).to(torch.int64)
    torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN, group=group)
    return rows & (rows.cumsum(0) <= count)


def with_in_batch_negatives(batch: VLBatch, generator: torch.Generator | None) -> VLBatch:
    """The batch with NSP labels drawn in it: each image row is a negative with probability 1/2 and
    is then paired with the image of the image row a random shift k (1 <= k < n) further on, so never
    its own. ``itm_label`` (1 matched, 0 re-paired) and ``extras["nsp_image_from"]`` [B] are set;
    the row's own pair stays in the batch for the contrastive passes."""
    if batch.itm_label is not None and bool((batch.itm_label == 0).any()):
        raise ValueError("CSS-BERT with in-batch NSP negatives reads every row as a matched pair, but the "
                         "loader gave ITM negatives: set data.itm_negative_prob to 0")
    b = batch.batch_size
    device = batch.input_ids.device
    rows = batch.image_rows.nonzero().squeeze(1)
    image_from = torch.arange(b, device=device)
    label = torch.ones(b, dtype=torch.int64, device=device)
    n = rows.numel()
    if n >= 2:
        negative = torch.rand(n, generator=generator, device=device) < 0.5
        shift = int(torch.randint(1, n, (1,), generator=generator, device=device))
        donors = rows.roll(-shift)
        image_from[rows[negative]] = donors[negative]
        label[rows[negative]] = 0
    return batch.replace(itm_label=label, extras={**(batch.extras or {}), "nsp_image_from": image_from})


def paired_with_images(batch: VLBatch, image_from: torch.Tensor) -> VLBatch:
    """The batch with row i's image fields taken from row ``image_from[i]``."""
    return batch.replace(**{name: getattr(batch, name)[image_from] for name in _IMAGE_FIELDS
                            if getattr(batch, name) is not None})
