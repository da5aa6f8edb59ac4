"""Loads the compiled extension vlengine._C, remembering why when it cannot."""

from __future__ import annotations

import importlib

_module = None
_error: str | None = None


def load():
    """The vlengine._C module (its import registers the C++/CUDA ops), or None."""
    global _module, _error
    if _module is None and _error is None:
        try:
            _module = importlib.import_module("vlengine._C")
        except ImportError as exc:  # not built, or built against another torch
            _error = f"vlengine._C could not be imported ({exc}); build it with `pip install --no-build-isolation -e .`"
    return _module


def error() -> str | None:
    load()
    return _error
