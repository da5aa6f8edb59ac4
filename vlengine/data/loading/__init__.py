"""Datasets, collation, per-rank batch plans and the resumable pretraining loader."""

from .collate import collate_items, concat_batches
from .datasets import CaptionImageDataset, TextChunkDataset
from .loader import PretrainLoader, embedded_pretrain_loader, make_pretrain_loader
from .sampling import BatchPlan, ResumableBatchSampler, shard_indices, token_budget_batches

__all__ = ["BatchPlan", "CaptionImageDataset", "PretrainLoader", "ResumableBatchSampler", "TextChunkDataset", "collate_items",
           "concat_batches", "embedded_pretrain_loader", "make_pretrain_loader", "shard_indices",
           "token_budget_batches"]
