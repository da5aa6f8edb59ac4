"""Converters from the field's region-feature formats into a vlengine store.

Python: ``convert(TsvSource([...]), out_dir, ...)``; command line:
``vlengine data convert --from {tsv,vlbert-zip,lmdb,npz} SRC --out STORE``.
"""

from .base import ConversionError, RegionRecord
from .npz_dir import NpzDirSource
from .runner import convert
from .tsv import TsvSource
from .vlbert import VlbertSource


def LmdbSource(*args, **kwargs):
    """UNITER-style LMDB source (imports the ``lmdb`` package on use)."""
    from .uniter_lmdb import LmdbSource as _LmdbSource
    return _LmdbSource(*args, **kwargs)


__all__ = ["ConversionError", "LmdbSource", "NpzDirSource", "RegionRecord", "TsvSource", "VlbertSource", "convert"]
