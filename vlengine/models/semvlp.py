"""SemVLP: one shared Transformer run single-stream or two-stream, with cross-modal attention above L_s."""

from __future__ import annotations

import torch
from torch import nn

from vlengine.batch import VLBatch

from . import validation
from .config import VLConfig
from .embeddings import TextEmbeddings
from .encoder import Encoder
from .image_tokens import image_sequence, normalized_boxes
from .init import init_bert_weights
from .outputs import VLOutput
from .packing import SequenceLayout
from .pooler import Pooler

MODES = ("single", "two")


class SemVLPImageEmbeddings(nn.Module):
    """Linear(cat(feature, (x1/W, y1/H, x2/W, y2/H))) -> LN -> dropout; a learned [IMG] embedding is added at slot 0."""

    def __init__(self, config: VLConfig):
        super().__init__()
        h = config.hidden_size
        self.projection = nn.Linear(config.region_feature_size + 4, h)
        self.image_token = nn.Parameter(torch.empty(h))
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, features, boxes, image_size):
        dtype = self.projection.weight.dtype
        position = normalized_boxes(boxes, image_size)[..., :4]
        x = self.projection(torch.cat((features.to(dtype), position.to(dtype)), dim=-1))
        is_image_token = torch.zeros(x.shape[1], 1, dtype=x.dtype, device=x.device)
        is_image_token[0] = 1.0
        return self.dropout(self.LayerNorm(x + is_image_token * self.image_token))


class SemVLP(nn.Module):
    """SemVLP (ICLR 2021 submission): shared self-attention and FFN for both modes, a pluggable cross-attention.

    ``forward(batch, mode="single")``: [IMG] regions text as one sequence through
    all layers (self-attention and FFN only), the low-level alignment.
    ``forward(batch, mode="two")``: the text runs through all layers alone
    (H^L); the image runs through the same layers, and in layers with index >=
    ``config.cross_attention_start`` (the paper's l > L_s, L_s = 6) its tokens
    also attend to H^L (cross-modal attention from text to image, the paper's
    eq. 2). Both modes use one set of parameters; only the two-stream mode
    touches the cross-attention modules.

    ``pooled`` is the pooler on h_CLS in single-stream mode and on o_IMG in
    two-stream mode (where the paper puts the ITM and QA classifiers);
    ``image`` is the [IMG] output.
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.image_embeddings = SemVLPImageEmbeddings(config)
        self.encoder = Encoder(config, config.num_layers, cross_attention_start=config.cross_attention_start)
        self.pooler = Pooler(config.hidden_size)
        init_bert_weights(self, config.initializer_range)
        nn.init.normal_(self.image_embeddings.image_token, 0.0, config.initializer_range)

    def forward(self, batch: VLBatch, mode: str = "single") -> VLOutput:
        if mode not in MODES:
            raise ValueError(f"SemVLP.forward: mode must be one of {MODES}, got {mode!r}")
        cfg = self.config
        validation.check_text(batch, cfg)
        validation.check_regions(batch, cfg)
        text_mask = batch.text_mask
        self.embeddings.check_positions(batch.text_lengths - 1)
        text = self.embeddings.normalize(self.embeddings.tokens(
            batch.input_ids, self.embeddings.text_positions(text_mask), batch.token_type_ids))
        features, boxes, image_mask = image_sequence(batch)
        image = self.image_embeddings(features, boxes, batch.image_size).to(text.dtype)

        if mode == "single":
            layout = SequenceLayout([image_mask, text_mask], compact=cfg.pack, unpad=cfg.unpad)
            x = self.encoder(layout.pack([image, text]), layout)
            image_out, text_out = layout.unpack(x, 0), layout.unpack(x, 1)
        else:
            text_layout = SequenceLayout([text_mask], compact=cfg.pack, unpad=cfg.unpad)
            image_layout = SequenceLayout([image_mask], compact=cfg.pack, unpad=cfg.unpad)
            text_final = self.encoder(text_layout.pack([text]), text_layout)
            image_final = self.encoder(image_layout.pack([image]), image_layout,
                                       context=text_final, context_layout=text_layout)
            text_out, image_out = text_layout.unpack(text_final, 0), image_layout.unpack(image_final, 0)

        cls = text_out[torch.arange(text_out.shape[0], device=text_out.device), batch.cls_index]
        summary = cls if mode == "single" else image_out[:, 0]
        return VLOutput(text=text_out, regions=image_out[:, 1:], pooled=self.pooler(summary),
                        image=image_out[:, 0], extras={"mode": mode, "region_mask": image_mask[:, 1:]})
