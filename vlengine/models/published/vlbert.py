"""VL-BERT (jackroos/VL-BERT) pretrained checkpoints -> the engine's ``VLBert`` (+ ``mlm``, ``mrc``, ``itm``).

Key names and shapes read from jackroos/VL-BERT:
  common/visual_linguistic_bert.py       ``VisualLinguisticBert``: word_embeddings, end_embedding,
      position_embeddings, token_type_embeddings (3 rows), embedding_LayerNorm, visual_ln_text,
      visual_ln_object, encoder (BERT layers of external/pytorch_pretrained_bert/modeling.py), pooler
      (only with ``with_pooler``; the released pretraining configs set it false);
      ``VisualLinguisticBertForPretraining``: mlm_head.predictions (BERT's MLM head, decoder tied to
      the word embeddings), mvrc_head (transform.dense + region_cls_pred, no LayerNorm),
      relationsip_head.caption_image_relationship (sic).
  pretrain/modules/resnet_vlbert_for_pretraining.py (and ..._multitask.py) ``ResNetVLBERTForPretraining``:
      image_feature_extractor (common/fast_rcnn.py ``FastRCNN``: the ResNet-101 backbone,
      roi_head_feature_extractor and head in the end-to-end model; obj_downsample = Dropout,
      Linear(4096, H), ReLU over cat(sin/cos geometry, appearance)), object_linguistic_embeddings [1, H],
      object_mask_visual_embedding [1, 2048] (precomputed features), object_mask_word_embedding [1, H],
      aux_text_visual_embedding [1, H] (multitask: the visual term of text-only rows).
The checkpoint file is ``{"state_dict": ..., "optimizer": ..., ...}`` saved from the DDP-wrapped model
(``module.`` prefixes).
"""

from __future__ import annotations

import torch

from ..config import VLConfig
from .assembly import BACKBONE, Assembly, bert_sizes
from .heads import HEADS
from .reading import read_published

GEOMETRY_SIZE = 4 * 2 * 256    # fast_rcnn.py: coordinate_embeddings(boxes, 256)
RESNET = "the ResNet image feature extractor of the end-to-end model (the engine's end-to-end front-end, " \
         "vlengine.models.visual, is built and loaded separately)"


def read_vlbert(path: str) -> dict[str, torch.Tensor]:
    return read_published(path, "VL-BERT", "vlbert.word_embeddings.weight", wrapper_key="state_dict")


def convert_vlbert(state: dict[str, torch.Tensor], source: str = "VL-BERT checkpoint",
                   num_heads: int | None = None, seed: int = 0):
    """A VL-BERT pretraining state dict (``module.`` removed) -> ``Conversion`` of a VLBert export."""
    a = Assembly(state, "vlbert", source)
    sizes = bert_sizes(state, "vlbert.", num_heads)
    h = sizes["hidden_size"]

    a.put(BACKBONE + "embeddings.word_embeddings.weight", "vlbert.word_embeddings.weight")
    a.put(BACKBONE + "embeddings.position_embeddings.weight", "vlbert.position_embeddings.weight")
    a.put(BACKBONE + "embeddings.token_type_embeddings.weight", "vlbert.token_type_embeddings.weight")
    for kind in ("weight", "bias"):
        a.put(BACKBONE + f"embeddings.LayerNorm.{kind}", f"vlbert.embedding_LayerNorm.{kind}")
        a.put(BACKBONE + f"visual_ln_text.{kind}", f"vlbert.visual_ln_text.{kind}")
        a.put(BACKBONE + f"visual_ln_region.{kind}", f"vlbert.visual_ln_object.{kind}")
    a.put_bert("vlbert.", sizes["num_layers"])       # encoder.layer.N (+ pooler when with_pooler)
    for published, engine in (("vlbert.end_embedding.weight", "end_token"),
                              ("object_linguistic_embeddings.weight", "region_token"),
                              ("object_mask_visual_embedding.weight", "mask_region_feature"),
                              ("aux_text_visual_embedding.weight", "text_only_visual")):
        if a.has(published):   # nn.Embedding(1, d): its one row is the engine's vector
            a.put(BACKBONE + engine, published, value=state[published][0])
    _region_projection(a, h)

    a.put_mlm_head("vlbert.mlm_head.predictions")
    for kind in ("weight", "bias"):
        a.put(f"mrc.transform.dense.{kind}", f"vlbert.mvrc_head.transform.dense.{kind}")
        a.put(f"mrc.classifier.{kind}", f"vlbert.mvrc_head.region_cls_pred.{kind}")
        a.put(f"itm.classifier.{kind}", f"vlbert.relationsip_head.caption_image_relationship.{kind}")
    if a.has("vlbert.mvrc_head.region_cls_pred.weight"):
        a.notes.append("mrc.transform.LayerNorm is fresh: VL-BERT's MVRC transform is dense + GELU without "
                       "a LayerNorm, the engine's has one; fine-tune the head before trusting its logits")

    a.skip("image_feature_extractor.backbone.", RESNET)
    a.skip("image_feature_extractor.roi_head_feature_extractor.", RESNET)
    a.skip("image_feature_extractor.head.", RESNET)
    a.skip("image_feature_extractor.object_embed.", "the detector-class embedding (IMAGE_SEMANTIC): the "
           "engine's region projection takes appearance and geometry only")
    a.skip("image_feature_extractor.regularizing_predictor.", "the CNN regularising classifier (training only)")
    a.skip(["object_mask_word_embedding.weight"], "the linguistic embedding VL-BERT gives masked RoIs: the "
           "engine keeps the region token for masked RoIs and replaces only their appearance")
    a.skip("vlbert.visual_1x1_", "a visual projection used when visual_size != hidden_size (released "
           "configs have them equal); the engine has none")
    a.skip(["vlbert.visual_scale_text", "vlbert.visual_scale_object"],
           "scalar visual scales (visual_ln: false); the engine gates the visual terms with LayerNorms")
    a.skip("vlbert.special_word_embeddings.", "the trainable copy of the first 1000 word rows kept when the "
           "word embeddings are frozen; the engine has one word table")

    config = VLConfig(**sizes, max_position_embeddings=state["vlbert.position_embeddings.weight"].shape[0],
                      type_vocab_size=max(3, state["vlbert.token_type_embeddings.weight"].shape[0]),
                      region_feature_size=2048, geometry_frequencies=256,
                      num_region_classes=_rows(state, "vlbert.mvrc_head.region_cls_pred.weight", 1601))
    return a.finish("VLBert", config, HEADS, seed)


def _region_projection(a: Assembly, hidden: int) -> None:
    """obj_downsample.1 reads cat(geometry, appearance); the engine's region_projection cat(appearance, geometry)."""
    key = "image_feature_extractor.obj_downsample.1.weight"
    if not a.has(key):
        return
    weight = a.state[key]
    if tuple(weight.shape) != (hidden, 2048 + GEOMETRY_SIZE):
        a.skip([key, key.replace("weight", "bias")], f"obj_downsample reads {weight.shape[1]} values (the "
               "detector-class embedding is on); the engine's region projection reads 2048 + 2048")
        return
    swapped = torch.cat((weight[:, GEOMETRY_SIZE:], weight[:, :GEOMETRY_SIZE]), dim=1)
    a.put(BACKBONE + "region_projection.linear.weight", key, value=swapped)
    a.put(BACKBONE + "region_projection.linear.bias", key.replace("weight", "bias"))
    a.notes.append("region_projection.linear.weight: obj_downsample's columns reordered from (geometry, "
                   "appearance) to the engine's (appearance, geometry)")


def _rows(state: dict, key: str, default: int) -> int:
    return state[key].shape[0] if key in state else default
