"""UNITER (ChenRocks/UNITER) pretrained checkpoints -> the engine's ``VLBert`` text, encoder and pooler (+ heads).

Key names and shapes read from ChenRocks/UNITER:
  model/model.py    ``UniterModel`` under ``uniter.``: embeddings (UniterTextEmbeddings: word,
      position, token_type (2 rows; images use row 1), LayerNorm), img_embeddings
      (UniterImageEmbeddings: img_linear Linear(2048, H), img_layer_norm, pos_linear Linear(7, H) over
      (x1, y1, x2, y2, w, h, w*h), pos_layer_norm, mask_embedding Embedding(2, 2048), LayerNorm),
      encoder.layer.N (model/layer.py BertLayer, BERT names), pooler.dense.
  model/pretrain.py ``UniterForPretraining``: cls.predictions (BERT's MLM head, decoder tied to the
      word embeddings), feat_regress (net = Linear, GELU, LayerNorm; weight = img_linear.weight, used
      transposed; bias [2048]), region_classifier.net (Linear, GELU, LayerNorm, Linear(H, 1601)),
      itm_output Linear(H, 2) (class 1 = matched, data/itm.py).
utils/save.py writes ``model.state_dict()`` as a plain dict (no wrapper, no ``module.``).
"""

from __future__ import annotations

import torch

from ..config import VLConfig
from .assembly import BACKBONE, Assembly, bert_sizes
from .heads import HEADS
from .reading import read_published

IMAGE_EMBEDDING = "UNITER's image embedding (LN(Linear(2048, H)) + LN(Linear(7, H)) box position, then " \
                  "LayerNorm) has no counterpart in VL-BERT's region projection (appearance ++ sin/cos " \
                  "geometry -> Linear(4096, H) -> ReLU)"
BOX_POSITION = "UNITER's 7-d box position linear has no counterpart in VL-BERT's sinusoidal geometry embedding"


def read_uniter(path: str) -> dict[str, torch.Tensor]:
    return read_published(path, "UNITER", "uniter.embeddings.word_embeddings.weight")


def convert_uniter(state: dict[str, torch.Tensor], source: str = "UNITER checkpoint",
                   num_heads: int | None = None, seed: int = 0):
    """A UNITER pretraining state dict -> ``Conversion`` of a VLBert export."""
    a = Assembly(state, "uniter", source)
    sizes = bert_sizes(state, "uniter.", num_heads)
    a.put_bert("uniter.", sizes["num_layers"])
    segments = "uniter.embeddings.token_type_embeddings.weight"
    if state[segments].shape[0] == 2:
        # UNITER's image tokens carry segment 1: the engine's regions (segment C) start from that row
        a.put(BACKBONE + "embeddings.token_type_embeddings.weight", segments,
              value=torch.cat((state[segments], state[segments][1:2])))
        a.notes.append("segment C (regions) <- UNITER's token type 1, the segment its image tokens carry")

    a.put_mlm_head("cls.predictions")
    for kind in ("weight", "bias"):
        a.put(f"mrc.transform.dense.{kind}", f"region_classifier.net.0.{kind}")
        a.put(f"mrc.transform.LayerNorm.{kind}", f"region_classifier.net.2.{kind}")
        a.put(f"mrc.classifier.{kind}", f"region_classifier.net.3.{kind}")
        a.put(f"regression.transform.dense.{kind}", f"feat_regress.net.0.{kind}")
        a.put(f"regression.transform.LayerNorm.{kind}", f"feat_regress.net.2.{kind}")
        a.put(f"itm.classifier.{kind}", f"itm_output.{kind}")
    if a.has("feat_regress.weight"):   # img_linear's [H, 2048], applied as F.linear(x, weight.t())
        a.put("regression.regressor.weight", "feat_regress.weight", value=state["feat_regress.weight"].t())
    a.put("regression.regressor.bias", "feat_regress.bias")

    a.skip([f"uniter.img_embeddings.pos_{part}.{kind}" for part in ("linear", "layer_norm")
            for kind in ("weight", "bias")], BOX_POSITION)
    a.skip("uniter.img_embeddings.mask_embedding.", "UNITER adds a learned vector to masked RoI features; "
           "the engine replaces a masked RoI's appearance with its own learned vector")
    a.skip("uniter.img_embeddings.", IMAGE_EMBEDDING)

    img_dim = state["uniter.img_embeddings.img_linear.weight"].shape[1] \
        if a.has("uniter.img_embeddings.img_linear.weight") else 2048
    config = VLConfig(**sizes, max_position_embeddings=state["uniter.embeddings.position_embeddings.weight"].shape[0],
                      type_vocab_size=max(3, state[segments].shape[0]), region_feature_size=img_dim,
                      num_region_classes=state["region_classifier.net.3.weight"].shape[0]
                      if a.has("region_classifier.net.3.weight") else 1601)
    return a.finish("VLBert", config, HEADS, seed)
