"""Pretraining and task heads, one per file. Each has ``forward`` (logits / embeddings) and ``loss`` (from VLBatch fields).

    MaskedLMHead               MLM tied to the word embeddings; logits only at masked rows; chunked fused CE option
    RegionClassificationHead   masked region classification, hard labels or soft 1601-score targets
    RegionFeatureRegressionHead  masked region feature regression (MSE or smooth L1)
    ITMHead / NSPHead          2-way classifiers on the pooled output (ITM / sentence-image relation; NSP)
    InterBertITMHead           InterBERT's MLP on text [CLS] x mean-pooled image output
    ImageQAHead                image QA over an answer set with soft-score BCE
    AnswerSlotHead             VL-BERT's VQA readout at the [MASK] answer slot (MLM transform + classifier)
    RegionScoreHead            RefCOCO+: one score per region output (VL-BERT's transform + Linear(H, 1), or a Linear)
    PooledPairClassifier       NLVR2: two encodings' pooled outputs concatenated -> MLP -> classes
    ContrastiveProjection      CSS-BERT's sentence / image projections for the contrastive loss op
"""

from vlengine.ops.linear_cross_entropy import fused_linear_cross_entropy

from .answer_slot import AnswerSlotHead
from .contrastive import ContrastiveProjection
from .image_qa import ImageQAHead
from .interbert_itm import InterBertITMHead
from .mlm import MaskedLMHead
from .pair_classification import ITMHead, NSPHead
from .pooled_pair import PooledPairClassifier
from .region_classification import RegionClassificationHead
from .region_regression import RegionFeatureRegressionHead
from .region_score import RegionScoreHead
from .transform import PredictionTransform

__all__ = ["ContrastiveProjection", "ITMHead", "ImageQAHead", "InterBertITMHead", "MaskedLMHead", "NSPHead",
           "AnswerSlotHead", "PooledPairClassifier",
           "PredictionTransform", "RegionClassificationHead", "RegionFeatureRegressionHead", "RegionScoreHead",
           "fused_linear_cross_entropy"]
