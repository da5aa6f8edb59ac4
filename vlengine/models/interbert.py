"""InterBERT (Lin et al., KDD 2020): single-stream interaction module + two-stream independence module."""

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
from .pooler import Pooler, masked_mean


class ImageEmbeddings(nn.Module):
    """InterBERT's image embedding: LN(Linear(feature)) + LN(Linear(box position)), summed, LN, dropout.

    The paper learns the region "positional embedding" from the box through an
    MLP and adds it to the feature embedding, then applies a LayerNorm.
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        h, eps = config.hidden_size, config.layer_norm_eps
        self.feature = nn.Linear(config.region_feature_size, h)
        self.feature_norm = nn.LayerNorm(h, eps=eps)
        self.position = nn.Linear(5, h)
        self.position_norm = nn.LayerNorm(h, eps=eps)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, features, boxes, image_size):
        x = self.feature_norm(self.feature(features.to(self.feature.weight.dtype)))
        x = x + self.position_norm(self.position(normalized_boxes(boxes, image_size).to(x.dtype)))
        return self.dropout(self.LayerNorm(x))


class InterBert(nn.Module):
    """Single-stream BERT layers over text + image, then separate Transformers per modality.

    Text: [CLS] text [SEP] with BERT's embeddings. Image: [IMG] (mean of the
    region features, whole-image box) then the regions. The interaction module
    (``encoder``, ``config.num_layers`` layers, BERT-initialisable) sees both;
    the independence module runs ``config.num_independence_layers`` layers on
    the text part (``text_encoder``) and on the image part (``image_encoder``)
    separately.

    Returns ``VLOutput`` with ``pooled`` = BERT pooler on text [CLS], ``image`` =
    mean of region outputs (the ITM head's input with text [CLS]), and
    ``extras["text_cls"]`` (un-pooled text [CLS] output), ``extras["image_cls"]`` ([IMG] output).
    """

    def __init__(self, config: VLConfig):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.image_embeddings = ImageEmbeddings(config)
        self.encoder = Encoder(config, config.num_layers)
        self.text_encoder = Encoder(config, config.num_independence_layers)
        self.image_encoder = Encoder(config, config.num_independence_layers)
        self.pooler = Pooler(config.hidden_size)
        init_bert_weights(self, config.initializer_range)

    def forward(self, batch: VLBatch) -> VLOutput:
        cfg = self.config
        validation.check_text(batch, cfg)
        validation.check_regions(batch, cfg)
        text_mask = batch.text_mask
        self.embeddings.check_positions(batch.text_lengths - 1)
        text = self.embeddings.normalize(self.embeddings.tokens(
            batch.input_ids, self.embeddings.text_positions(text_mask), batch.token_type_ids))
        features, boxes, image_mask = image_sequence(batch)
        image = self.image_embeddings(features, boxes, batch.image_size).to(text.dtype)

        joint = SequenceLayout([text_mask, image_mask], compact=cfg.pack, unpad=cfg.unpad)
        x = self.encoder(joint.pack([text, image]), joint)
        text_x, image_x = joint.unpack(x, 0), joint.unpack(x, 1)

        text_layout = SequenceLayout([text_mask], compact=cfg.pack, unpad=cfg.unpad)
        image_layout = SequenceLayout([image_mask], compact=cfg.pack, unpad=cfg.unpad)
        text_out = text_layout.unpack(self.text_encoder(text_layout.pack([text_x]), text_layout), 0)
        image_out = image_layout.unpack(self.image_encoder(image_layout.pack([image_x]), image_layout), 0)

        regions, region_mask = image_out[:, 1:], image_mask[:, 1:]
        cls = text_out[torch.arange(text_out.shape[0], device=text_out.device), batch.cls_index]
        return VLOutput(text=text_out, regions=regions, pooled=self.pooler(cls),
                        image=masked_mean(regions, region_mask),
                        extras={"text_cls": cls, "image_cls": image_out[:, 0], "region_mask": region_mask})
