"""Multi-head attention on torch.nn.functional.scaled_dot_product_attention, with one fused QKV projection."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import VLConfig
from .packing import SequenceLayout


def attend(q, k, v, mask, dropout_p: float, kind: str) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) | mask) v over [B, heads, L, d] tensors; ``mask`` is bool (True = attend) or None.

    ``kind="sdpa"`` lets PyTorch pick a fused kernel (flash / memory-efficient /
    CPU flash); ``"eager"`` materialises the probabilities: the plain baseline.
    """
    if kind == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = F.dropout(scores.softmax(-1), dropout_p, training=dropout_p > 0)
    return probs @ v


class SelfAttention(nn.Module):
    """Self-attention whose Q, K and V come from one [H, 3H] matmul (one GEMM instead of three)."""

    def __init__(self, config: VLConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout = config.attention_dropout
        self.kind = config.attention
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
        qkv = layout.to_padded(self.qkv(x))                       # [B, L, 3H]
        batch, length, _ = qkv.shape
        q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        context = attend(q, k, v, layout.attention_mask, self.dropout if self.training else 0.0, self.kind)
        context = context.transpose(1, 2).reshape(batch, length, -1)
        return self.output(layout.to_tokens(context))


class CrossAttention(nn.Module):
    """Queries from one sequence, keys and values (one fused [H, 2H] projection) from another."""

    def __init__(self, config: VLConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout = config.attention_dropout
        self.kind = config.attention
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key_value = nn.Linear(config.hidden_size, 2 * config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, layout: SequenceLayout, context: torch.Tensor,
                context_layout: SequenceLayout) -> torch.Tensor:
        q = layout.to_padded(self.query(x))
        kv = context_layout.to_padded(self.key_value(context))
        batch, length, _ = q.shape
        q = q.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = kv.view(batch, kv.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = attend(q, k, v, context_layout.attention_mask, self.dropout if self.training else 0.0, self.kind)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.output(layout.to_tokens(out))
