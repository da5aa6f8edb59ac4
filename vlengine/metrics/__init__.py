"""Evaluation metrics: not fused ops, so not in vlengine.ops.

Metrics sit beside models and data (above ops): they import only torch and vlengine.ops.
"""

from .retrieval import retrieval_recall

__all__ = ["retrieval_recall"]
