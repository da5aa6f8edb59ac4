"""Capture and restore every random-number generator a training step touches.

Exact resume needs the state of torch (CPU and, where present, the current
CUDA device), numpy and Python's `random`. States are stored as plain tensors
and lists so that the checkpoint loads under `torch.load(weights_only=True)`
rules: no pickled numpy objects.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng_state() -> dict:
    """Return the RNG states of torch, CUDA (if initialised), numpy and python as checkpoint-safe values."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    """Restore what `capture_rng_state` returned; raises ValueError on a malformed state."""
    try:
        torch.set_rng_state(state["torch"])
        np_state = state["numpy"]
        np.random.set_state((
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        ))
        py = state["python"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"checkpoint RNG state is malformed: {err!r}") from err
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and python from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
