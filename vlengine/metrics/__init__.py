"""Evaluation metrics: not fused ops, so not in vlengine.ops.

Metrics sit beside models and data (above ops): they import only torch, numpy and vlengine.ops.
Each downstream metric reproduces its task's official evaluator exactly:

    retrieval_recall          tiled R@K of a dual encoder (no caption x image matrix)
    retrieval_metrics         Flickr30K / COCO protocol: R@1/5/10 both ways, mean; coco_1k_and_5k (5 folds)
    vqa_accuracy, AnswerVocab VQA v2's official accuracy (normalisation, leave-one-out); answer vocabulary
    gqa_accuracy              GQA exact match, overall and per type
    nlvr2_metrics             NLVR2 accuracy and consistency
"""

from .gqa import gqa_accuracy
from .nlvr2 import nlvr2_metrics
from .retrieval import retrieval_recall
from .retrieval_protocol import coco_1k_and_5k, retrieval_metrics
from .vqa import AnswerVocab, vqa_accuracy

__all__ = ["AnswerVocab", "coco_1k_and_5k", "gqa_accuracy", "nlvr2_metrics", "retrieval_metrics", "retrieval_recall",
           "vqa_accuracy"]
