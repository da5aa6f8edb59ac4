"""CSS-BERT (Mo, Xia, Markevych): VL-BERT + MLM + NSP + a pair-wise contrastive loss over sentence/image embeddings."""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch

from .config import VLConfig
from .heads.contrastive import ContrastiveProjection
from .outputs import VLOutput
from .vlbert import VLBert

CONTRASTIVE_INPUTS = ("separate", "joint")


class CSSBert(VLBert):
    """A VL-BERT whose forward also returns the projected sentence and image embeddings (E', F').

    Which outputs, pooled how (the poster does not say; these are the choices):
      * sentence embedding E = BERT pooler (dense + tanh) on the [CLS] output, the
        same vector NSP classifies;
      * image embedding F = mean of the region outputs over the valid regions;
      * both go through ``ContrastiveProjection`` (Linear to ``contrastive_dim``, L2-normalised).

    ``contrastive_inputs="separate"`` (default) takes E from a text-only pass
    (the caption, no regions) and F from an image-only pass ([CLS] plus the
    regions): in the joint pass both vectors have seen both modalities, so
    matching E_i with F_i would be solvable without aligning anything.
    ``"joint"`` takes both from the one VL-BERT forward (cheaper, no extra pass).

    ``extras["sentence_embedding"]`` and ``extras["image_embedding"]`` are [B, d].
    The B x B similarity is formed by the contrastive loss op, never here.
    """

    def __init__(self, config: VLConfig, visual=None, contrastive_inputs: str = "separate"):
        if contrastive_inputs not in CONTRASTIVE_INPUTS:
            raise ValueError(f"CSSBert: contrastive_inputs must be one of {CONTRASTIVE_INPUTS}, "
                             f"got {contrastive_inputs!r}")
        super().__init__(config, visual)
        self.contrastive_inputs = contrastive_inputs
        self.projection = ContrastiveProjection(config)
        from .init import init_bert_weights
        init_bert_weights(self.projection, config.initializer_range)

    def forward(self, batch: VLBatch, contrastive_batch: VLBatch | None = None) -> VLOutput:
        """``contrastive_batch``: the pairs E' and F' come from when they are not ``batch``'s own
        (CSS-BERT with NSP negatives formed in the batch: ``batch`` pairs some captions with other
        rows' images, the contrastive passes read the matched pairs); "separate" inputs only."""
        out = super().forward(batch)
        if batch.region_boxes is None:
            return out   # a text-only batch has no image side
        if self.contrastive_inputs == "joint":
            if contrastive_batch is not None:
                raise ValueError("CSSBert: contrastive_batch needs contrastive_inputs='separate' (the joint "
                                 "pass of a re-paired batch has no matched pairs)")
            sentence, image = out.pooled, out.image
        else:
            batch = batch if contrastive_batch is None else contrastive_batch
            no_regions = batch.replace(region_features=None, region_boxes=None, region_valid=None,
                                       region_masked=None, images=None, text_only=None)
            sentence = super().forward(no_regions).pooled
            cls_only = torch.zeros_like(batch.text_mask).scatter(1, batch.cls_index.unsqueeze(1), True)
            image = super().forward(batch.replace(text_mask=cls_only, token_type_ids=None)).image
        e, f = self.projection(sentence, image)
        out.extras["sentence_embedding"] = e
        out.extras["image_embedding"] = f
        return out
