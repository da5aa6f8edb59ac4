"""Converters from the field's region-feature formats into a vlengine store.

Python: ``convert(TsvSource([...]), out_dir, ...)``; command line:
``vlengine data convert --from {tsv,vlbert-zip,lmdb,npz} SRC --out STORE``.
Annotation sources (the downstream tasks' official files) go to annotation sets:
``convert_annotations(VqaSource(questions, annotations), out_dir)``, or
``vlengine data convert --from {vqa,gqa,nlvr2,karpathy,refcoco,vcr} SRC --out DIR``.
"""

from .annotation_base import convert_annotations
from .base import ConversionError, RegionRecord
from .gqa import GqaSource
from .karpathy import KarpathySource
from .nlvr2 import Nlvr2Source
from .npz_dir import NpzDirSource
from .refcoco import RefcocoSource
from .runner import convert
from .tsv import TsvSource
from .vcr import VcrImageSource, VcrSource
from .vlbert import VlbertSource
from .vqa import VqaSource


def LmdbSource(*args, **kwargs):
    """UNITER-style LMDB source (imports the ``lmdb`` package on use)."""
    from .uniter_lmdb import LmdbSource as _LmdbSource
    return _LmdbSource(*args, **kwargs)


__all__ = ["ConversionError", "GqaSource", "KarpathySource", "LmdbSource", "Nlvr2Source", "NpzDirSource", "RefcocoSource",
           "RegionRecord", "TsvSource", "VcrImageSource", "VcrSource", "VlbertSource", "VqaSource", "convert", "convert_annotations"]
