"""What the four pretraining objectives share: the model, its masking policies, the tied MLM head,
the task names, and `prepare_batch`."""

from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from vlengine.batch import VLBatch
from vlengine.models.heads import MaskedLMHead

from .terms import mlm_term

# A masking policy (vlengine.data.masking): (batch, generator) -> masked batch.
Masker = Callable[[VLBatch, torch.Generator], VLBatch]


class PretrainObjective(nn.Module):
    """An architecture plus its pretraining heads, as one module DeepSpeed can wrap.

    Subclasses set ``tasks`` (the names the task mixer draws, one per step) and
    ``paper`` (for messages), call ``super().__init__(model, masker)`` and then
    add their own heads, and implement ``forward(batch, task) -> TaskOutput``.

    Submodules are registered as ``model`` then ``mlm`` before a subclass's heads:
    the state-dict keys and the parameter order (which DeepSpeed flattens the
    optimizer state in) are those of the checkpoints written before this base
    existed (tests/tasks/test_objective_state_keys.py holds them).

    Args:
        model: the architecture (``vlengine.models``); its word embeddings are tied to the MLM decoder.
        masker: the masking policy of every task, a mapping task -> policy, or None (the batch is
            used as it comes: already masked).
    """

    tasks: tuple[str, ...] = ("pretrain",)
    paper: str = ""

    def __init__(self, model: nn.Module, masker: Masker | Mapping[str, Masker] | None):
        super().__init__()
        if isinstance(masker, Mapping):
            missing = sorted(set(self.tasks) - set(masker))
            if missing:
                raise ValueError(f"{self.title} needs a masking policy for tasks {missing}")
        self.model = model
        # a plain dict, not registered as submodules: policies hold no parameters
        self.maskers = dict(masker) if isinstance(masker, Mapping) else {task: masker for task in self.tasks}
        self.mlm = MaskedLMHead(model.config, model.embeddings.word_embeddings)

    @property
    def title(self) -> str:
        """The objective in messages: its paper, or its class name."""
        return self.paper or type(self).__name__

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise ValueError(f"{self.title} pretraining has tasks {self.tasks}, got {task!r}")

    def prepare_batch(self, batch: VLBatch, task: str, generator: torch.Generator) -> VLBatch:
        """Mask the batch for ``task`` with ``generator`` (on the host, before it moves to the device)."""
        self.check_task(task)
        masker = self.maskers[task]
        return batch if masker is None else masker(batch, generator)

    def itm_logits(self, out) -> torch.Tensor:
        """[B, 2] image-text match logits from a forward's output, for objectives with an ITM head:
        the pooled [CLS] output here; InterBERT's head reads two summaries and overrides this."""
        return self.itm(out.pooled)

    def mlm_term(self, text_hidden: torch.Tensor, batch: VLBatch, name: str = "mlm"):
        """(loss, {name_loss, name_acc}) of the masked tokens."""
        return mlm_term(self.mlm, text_hidden, batch.mlm_labels, name)
