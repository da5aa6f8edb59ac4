"""vlengine.models: VL-BERT, InterBERT, SemVLP and CSS-BERT from one set of parts.

Forward API (every architecture)::

    from vlengine.models import VLConfig, VLBert
    from vlengine.models.heads import MaskedLMHead, RegionClassificationHead

    config = VLConfig.base()                     # or .large(), .tiny(), VLConfig.from_file("model.yaml")
    model = VLBert(config)                       # precomputed-feature mode (batch.region_features)
    mlm = MaskedLMHead(config, model.embeddings.word_embeddings)   # tied decoder
    mrc = RegionClassificationHead(config)

    out = model(batch)                           # batch: vlengine.batch.VLBatch
    out.text      # [B, T, H] hidden state per text position of batch.input_ids (zeros on padding)
    out.regions   # [B, R, H] per region of batch.region_features (zeros on padding / text-only rows), or None
    out.pooled    # [B, H] BERT pooler on [CLS] (SemVLP two-stream: on [IMG]): input of ITM / NSP / QA heads
    out.image     # [B, H] image summary (VL-BERT, CSS-BERT, InterBERT: mean of region outputs; SemVLP: [IMG])
    out.extras    # architecture extras, e.g. CSS-BERT "sentence_embedding" / "image_embedding" [B, d]
    loss = mlm.loss(out.text, batch.mlm_labels) \
         + mrc.loss(out.regions, batch.region_masked, batch.region_targets, batch.region_soft_labels)

Architectures: ``VLBert(config, visual=None)``, ``InterBert(config)``,
``SemVLP(config)`` (``model(batch, mode="single" | "two")``, same parameters),
``CSSBert(config, contrastive_inputs="separate" | "joint")``. Weights:
``vlengine.models.weights.load_bert(model, bert_dir, mlm_head=..., nsp_head=...)``,
``save_checkpoint`` / ``load_checkpoint`` (safetensors + JSON). End-to-end
images: ``vlengine.models.visual.VisualFrontEnd`` passed as ``visual=``.

Batch fields read: input_ids, text_mask, token_type_ids (optional, segment A/B),
region_features / region_boxes / region_valid / image_size (regions; absent for
a text-only batch), text_only (rows that get no regions), region_masked (VL-BERT:
appearance replaced by a learned mask vector; InterBERT/SemVLP: zeroed), images
(end-to-end mode with a visual front-end). Labels use IGNORE_INDEX = -100. Heads
compute only at the labelled rows (MLM gathers masked tokens first, then chunks
the linear + CE when the [M, V] logits would be large: ``MaskedLMHead(fused=...)``).
"""

import importlib

from .config import VLConfig

# The architectures import torch (seconds); VLConfig does not. Load them on first use, so that checking
# a config file (`vlengine pretrain --config ...`) reports a mistake before torch is even imported.
_LAZY = {"CSSBert": ".cssbert", "InterBert": ".interbert", "VLOutput": ".outputs", "SemVLP": ".semvlp",
         "VLBert": ".vlbert"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CSSBert", "InterBert", "SemVLP", "VLBert", "VLConfig", "VLOutput"]
