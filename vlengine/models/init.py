"""BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms."""

from __future__ import annotations

from torch import nn


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise every Linear, Embedding and LayerNorm inside ``module`` as BERT does.

    Parameters that are not inside one of those (learned special embeddings) are
    left to their owner, which draws them from N(0, std) itself.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, 0.0, std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, 0.0, std)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
