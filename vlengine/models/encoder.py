"""BERT Transformer layers (Post-LN as BERT, Pre-LN as an option), optionally with cross-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import CrossAttention, SelfAttention
from .config import VLConfig
from .packing import SequenceLayout


def activation(name: str):
    if name == "gelu":
        return F.gelu
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    return F.relu


class FeedForward(nn.Module):
    def __init__(self, config: VLConfig):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = activation(config.hidden_act)

    def forward(self, x):
        return self.output(self.act(self.intermediate(x)))


class TransformerLayer(nn.Module):
    """Self-attention, optional cross-attention (SemVLP's pluggable module), feed-forward; each a residual sublayer."""

    def __init__(self, config: VLConfig, cross_attention: bool = False):
        super().__init__()
        eps = config.layer_norm_eps
        self.pre_layer_norm = config.pre_layer_norm
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.cross_attention = CrossAttention(config) if cross_attention else None
        self.cross_attention_norm = nn.LayerNorm(config.hidden_size, eps=eps) if cross_attention else None
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def _residual(self, x, norm, fn):
        if self.pre_layer_norm:
            return x + self.dropout(fn(norm(x)))
        return norm(x + self.dropout(fn(x)))

    def forward(self, x: torch.Tensor, layout: SequenceLayout, context: torch.Tensor | None = None,
                context_layout: SequenceLayout | None = None) -> torch.Tensor:
        x = self._residual(x, self.attention_norm, lambda h: self.attention(h, layout))
        if self.cross_attention is not None and context is not None:
            x = self._residual(x, self.cross_attention_norm,
                               lambda h: self.cross_attention(h, layout, context, context_layout))
        return self._residual(x, self.ffn_norm, self.ffn)


class Encoder(nn.Module):
    """A stack of TransformerLayers; layers with index >= ``cross_attention_start`` get cross-attention.

    Args:
        config: sizes, Pre/Post-LN, activation checkpointing.
        num_layers: layers in this stack.
        cross_attention_start: first layer (0-based) with a cross-attention module; None for none.
    """

    def __init__(self, config: VLConfig, num_layers: int, cross_attention_start: int | None = None):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(config, cross_attention_start is not None and i >= cross_attention_start)
            for i in range(num_layers))
        # Pre-LN leaves the residual stream unnormalised: one LayerNorm closes the stack.
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) \
            if config.pre_layer_norm and num_layers else None
        self.gradient_checkpointing = config.gradient_checkpointing

    def forward(self, x: torch.Tensor, layout: SequenceLayout, context: torch.Tensor | None = None,
                context_layout: SequenceLayout | None = None) -> torch.Tensor:
        """Run every layer; ``context`` (keys/values for cross-attention) None skips the cross-attention modules."""
        for layer in self.layers:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # Recompute the layer in backward: activation memory O(layers) -> O(1) layers.
                x = checkpoint(layer, x, layout, context, context_layout, use_reentrant=False)
            else:
                x = layer(x, layout, context, context_layout)
        return self.final_norm(x) if self.final_norm is not None else x
