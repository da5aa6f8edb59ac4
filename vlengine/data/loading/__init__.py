"""Datasets, collation, per-rank batch plans, the resumable stream and the pretraining loader.

:class:`ResumableStream` is the engine's one resumable data stream (an iterator
with ``state_dict`` / ``load_state_dict``); :func:`make_pretrain_loader` builds
the pretraining mixture from them (captions, plus text-only chunks and image-QA
questions mixed in).
"""

from .collate import collate_items, concat_batches
from .datasets import CaptionImageDataset, TextChunkDataset
from .question_dataset import QuestionImageDataset
from .loader import PretrainLoader, embedded_pretrain_loader, make_pretrain_loader
from .sampling import BatchPlan, shard_indices, token_budget_batches
from .stream import ResumableStream

__all__ = ["BatchPlan", "CaptionImageDataset", "PretrainLoader", "QuestionImageDataset", "ResumableStream", "TextChunkDataset", "collate_items",
           "concat_batches", "embedded_pretrain_loader", "make_pretrain_loader", "shard_indices",
           "token_budget_batches"]
