"""Reading DeepSpeed checkpoints without unpickling arbitrary objects (what `pretrain export` uses).

DeepSpeed's own readers (`zero_to_fp32`) call `torch.load(..., weights_only=False)`: a checkpoint
from someone else could run code. Inside `weights_only_loads()` every `torch.load` uses torch's
weights-only unpickler (TORCH_FORCE_WEIGHTS_ONLY_LOAD overrides the call's argument), with only the
few plain DeepSpeed records a ZeRO checkpoint holds allowed besides tensors and builtins.
"""

from __future__ import annotations

import contextlib
import importlib
import os

import torch

# Plain records in ZeRO optimizer states (found by loading stage-1/2 checkpoints of DeepSpeed 0.19).
_DEEPSPEED_RECORDS = (("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
                      ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
                      ("deepspeed.utils.tensor_fragment", "fragment_address"))


def _allowed_records() -> list:
    found = []
    for module, name in _DEEPSPEED_RECORDS:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # another DeepSpeed version: not allowed, so a clear refusal
            continue
    return found


@contextlib.contextmanager
def weights_only_loads():
    """Every torch.load in this block reads tensors and plain data only."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(_allowed_records()):
            yield
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
