"""Reading a published checkpoint: weights only (nothing is unpickled but tensors and plain data).

``torch.load(weights_only=True)`` refuses a pickle that names any class or function outside its
allow-list (a custom class, ``os.system``...). Every failure becomes a ``PublishedCheckpointError``:
one line naming the file, which the command prints without a traceback.
"""

from __future__ import annotations

import os
import pickle

import torch

from vlengine._config import UserError


class PublishedCheckpointError(UserError, ValueError):
    """A published checkpoint that cannot be read or is not of the codebase named."""


def load_weights(path: str) -> object:
    """The object a ``.pt`` / ``.pth`` / ``.model`` file holds, loaded weights-only on the CPU."""
    if os.path.isdir(path):
        raise PublishedCheckpointError(f"{path} is a folder; pass the checkpoint file itself")
    if not os.path.isfile(path):
        raise PublishedCheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch words a refused global as "... Unsupported global: GLOBAL mod.Name was not an allowed global ..."
        found = [line.strip() for line in str(err).splitlines() if "Unsupported global" in line]
        what = found[0].split(" was not")[0] if found else str(err).splitlines()[0]
        raise PublishedCheckpointError(
            f"{path} holds more than tensors and plain data ({what}); convert-checkpoint reads weights "
            "only and never unpickles code") from None
    except (RuntimeError, EOFError, OSError) as err:   # not a torch file, truncated archive
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PublishedCheckpointError(f"{path} cannot be read as a PyTorch checkpoint ({first})") from None


def state_dict_of(obj: object, path: str, wrapper_key: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint: ``obj[wrapper_key]`` when present, keys' ``module.`` prefix removed.

    ``module.`` is what ``nn.DataParallel`` / DDP put in front of every name when the training
    script saved the wrapped model (VL-BERT, LXMERT).
    """
    if isinstance(obj, dict) and wrapper_key is not None and isinstance(obj.get(wrapper_key), dict):
        obj = obj[wrapper_key]
    if not isinstance(obj, dict) or not obj:
        kind = type(obj).__name__ if not isinstance(obj, dict) else "an empty dict"
        raise PublishedCheckpointError(f"{path} holds {kind}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        entries = ", ".join(repr(k) for k in list(obj)[:5])
        raise PublishedCheckpointError(f"{path} holds no tensors (entries: {entries}); not a state dict")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


def require_key(state: dict, key: str, codebase: str, path: str) -> None:
    """A clear error when a file is not the codebase's checkpoint (a wrong --from, a fine-tuned variant)."""
    if key not in state:
        prefixes = sorted({k.split(".")[0] for k in state})[:6]
        raise PublishedCheckpointError(
            f"{path} does not look like a {codebase} checkpoint: it has no {key} (its keys start with "
            f"{', '.join(prefixes)})")


def read_published(path: str, codebase: str, anchor_key: str, wrapper_key: str | None = None) -> dict:
    """The ``module.``-free state dict of ``path``, checked to hold ``anchor_key`` (the codebase's word table)."""
    state = state_dict_of(load_weights(path), path, wrapper_key)
    require_key(state, anchor_key, codebase, path)
    return state
