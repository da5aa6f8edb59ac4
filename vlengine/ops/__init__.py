"""vlengine's fused ops. A user who wants only the ops imports this and nothing else.

Every op takes an optional ``backend=`` ("reference", "cpu", "cuda", "triton");
by default the fastest usable one runs. ``not_supported_reasons(device)`` says
why a backend cannot run; ``python -m vlengine.info`` prints the whole picture.
"""

from . import reference
from ._backend import BACKENDS, not_supported_reasons
from ._checks import set_value_checks
from .mask_pixels import mask_pixels
from .roi_align_masked import roi_align, roi_align_masked

__all__ = [
    "BACKENDS",
    "mask_pixels",
    "not_supported_reasons",
    "reference",
    "roi_align",
    "roi_align_masked",
    "set_value_checks",
]
