"""The masking of each paper, as one callable: ``masking_for("interbert", vocab_size)``."""

from __future__ import annotations

from vlengine.ops import INTERBERT_PAPER, INTERBERT_RELEASED

from .conditional import ConditionalMasking
from .mlm import MLMMasking
from .object_prediction import ObjectPredictionMasking
from .region_iou import IoURegionMasking
from .roi import RoIMasking
from .span import SpanMasking

PAPERS = ("vlbert", "interbert", "interbert-released", "semvlp", "cssbert")


def masking_for(paper: str, vocab_size: int, one_modality_per_row: bool = False,
                **text_settings) -> ConditionalMasking:
    """The text + region masking a paper pretrains with, conditional on ITM labels where it has ITM.

    vlbert:      whole-word MLM 15% + RoI masking (15%, 90/10, soft targets, whole-image box at 0 kept)
    interbert:   MSM spans (anchors 10%, +0..2 words) + IoU-neighbourhood MRM (paper: 0.15, > 0.4)
    interbert-released: the same with the released code's MRM (0.1, >= 0.4)
    semvlp:      MLM 15% + masked object prediction 15%
    cssbert:     MLM 15% (text only; its contrastive loss needs no masking)

    ``one_modality_per_row``: each row keeps the masking of its text or of its regions, not both
    (``ConditionalMasking``; InterBERT's paper). ``text_settings`` go to the text policy
    (mask_token_id, special_ids, ...).
    Conditional masking is harmless without ``itm_label`` (VL-BERT and
    CSS-BERT batches have none), so every preset uses it.
    """
    if paper == "vlbert":
        policies = (MLMMasking(vocab_size, whole_word=True, **text_settings), RoIMasking())
    elif paper in ("interbert", "interbert-released"):
        preset = INTERBERT_PAPER if paper == "interbert" else INTERBERT_RELEASED
        policies = (SpanMasking(vocab_size, **text_settings), IoURegionMasking(preset))
    elif paper == "semvlp":
        policies = (MLMMasking(vocab_size, **text_settings), ObjectPredictionMasking())
    elif paper == "cssbert":
        policies = (MLMMasking(vocab_size, **text_settings),)
    else:
        raise ValueError(f"masking_for: unknown paper {paper!r}; choose one of {PAPERS}")
    return ConditionalMasking(policies, one_modality_per_row=one_modality_per_row)
