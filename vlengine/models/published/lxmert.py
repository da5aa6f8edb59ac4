"""LXMERT (airsplay/lxmert) pretrained checkpoints (``Epoch20_LXRT.pth``) -> the engine's ``SemVLP`` (+ heads).

Key names and shapes read from airsplay/lxmert, src/lxrt/modeling.py:
  ``LXRTModel`` under ``bert.``: embeddings (BertEmbeddings: word, position, token_type (2 rows),
      LayerNorm), encoder (LXRTEncoder: visn_fc = VisualFeatEncoder (visn_fc Linear(2048, H),
      visn_layer_norm, box_fc Linear(4, H), box_layer_norm, averaged); layer.N = the language layers
      (BertLayer, BERT names: attention.self.query/key/value, attention.output.dense/LayerNorm,
      intermediate.dense, output.dense/LayerNorm; 9 by default, src/param.py --llayers);
      r_layers.N = object-relationship layers (5); x_layers.N = LXRTXLayer cross-modality layers (5):
      visual_attention, lang_self_att, visn_self_att, lang_inter/output, visn_inter/output), pooler.dense.
  ``LXRTPretraining``: cls.predictions (MLM, decoder tied to the word embeddings), cls.seq_relationship
      (Linear(H, 2) on the pooled output: image-text match, class 1 = matched), obj_predict_head
      (BertVisualObjHead: one transform shared by decoder_dict.obj (1600 classes), .attr (400), .feat
      (2048)), answer_head.logit_fc (the pretraining QA head over LXMERT's own answer set).
src/pretrain/lxmert_pretrain.py saves the DataParallel-wrapped model's state dict (``module.`` prefixes).
"""

from __future__ import annotations

import torch

from ..config import VLConfig
from .assembly import Assembly, bert_sizes
from .heads import HEADS
from .reading import read_published

SEMVLP_CROSS_ATTENTION_START = 6    # SemVLP's L_s (VLConfig.cross_attention_start's default)


def read_lxmert(path: str) -> dict[str, torch.Tensor]:
    return read_published(path, "LXMERT", "bert.embeddings.word_embeddings.weight")


def convert_lxmert(state: dict[str, torch.Tensor], source: str = "LXMERT checkpoint",
                   num_heads: int | None = None, seed: int = 0):
    """An LXMERT pretraining state dict -> ``Conversion`` of a SemVLP export (its depth = LXMERT's language layers)."""
    a = Assembly(state, "lxmert", source)
    sizes = bert_sizes(state, "bert.", num_heads)
    a.put_bert("bert.", sizes["num_layers"])

    a.put_mlm_head("cls.predictions")
    for kind in ("weight", "bias"):
        a.put(f"itm.classifier.{kind}", f"cls.seq_relationship.{kind}")
        a.put(f"mrc.classifier.{kind}", f"obj_predict_head.decoder_dict.obj.{kind}")
        a.put(f"regression.regressor.{kind}", f"obj_predict_head.decoder_dict.feat.{kind}")
        # LXMERT shares one transform between its object, attribute and feature decoders;
        # the engine's label and regression heads each have their own: both start from it.
        for part in ("dense", "LayerNorm"):
            _put_shared(a, f"obj_predict_head.transform.{part}.{kind}",
                        (f"mrc.transform.{part}.{kind}", f"regression.transform.{part}.{kind}"))

    a.skip("bert.encoder.x_layers.", "LXMERT's cross-modality layers (both streams attend to each other in "
           "every layer); SemVLP's cross-attention is image-to-final-text in its upper shared layers")
    a.skip("bert.encoder.r_layers.", "LXMERT's object-relationship (vision-only) layers; SemVLP runs the "
           "image through its shared layers")
    a.skip("bert.encoder.visn_fc.", "LXMERT's object encoder (LN(Linear(2048, H)) and LN(Linear(4, H)), "
           "averaged); SemVLP's image embedding is one Linear over feature ++ box, then LayerNorm")
    a.skip("obj_predict_head.decoder_dict.attr.", "attribute classification (400 Visual Genome attributes): "
           "the engine has no attribute head")
    a.skip("answer_head.", "the pretraining QA head over LXMERT's own answer vocabulary, which the checkpoint "
           "does not carry")

    layers = sizes["num_layers"]
    feat_dim = state["bert.encoder.visn_fc.visn_fc.weight"].shape[1] \
        if a.has("bert.encoder.visn_fc.visn_fc.weight") else 2048
    config = VLConfig(**sizes, max_position_embeddings=state["bert.embeddings.position_embeddings.weight"].shape[0],
                      type_vocab_size=max(3, state["bert.embeddings.token_type_embeddings.weight"].shape[0]),
                      region_feature_size=feat_dim,
                      # SemVLP's L_s = 6, or the last layer of a shallower stack, so cross-attention exists
                      cross_attention_start=min(SEMVLP_CROSS_ATTENTION_START, layers - 1),
                      num_region_classes=state["obj_predict_head.decoder_dict.obj.weight"].shape[0]
                      if a.has("obj_predict_head.decoder_dict.obj.weight") else 1600)
    a.notes.append(f"SemVLP depth {layers} = LXMERT's language layers; the cross-attention of layers "
                   f"{config.cross_attention_start}..{layers - 1} and the image embedding start fresh")
    return a.finish("SemVLP", config, HEADS, seed)


def _put_shared(a: Assembly, key: str, export_names: tuple[str, ...]) -> None:
    for name in export_names:
        a.put(name, key)
