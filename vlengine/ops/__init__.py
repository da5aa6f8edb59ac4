"""vlengine's fused ops. A user who wants only the ops imports this and nothing else.

Every op takes an optional ``backend=`` ("reference", "cpu", "cuda", "triton");
by default the fastest usable one runs. ``not_supported_reasons(device)`` says
why a backend cannot run; ``python -m vlengine.info`` prints the whole picture.
Each op is described once (``_descriptor.OpDescriptor``, one per op module):
its backends, its torch.library registration and its listing in info come from
that record. The ``torch.ops.vlengine.*`` schemas and their argument order are
in README.md beside this file. The ops also come as nn.Modules
(``RoIAlign``, ``RoIAlignMasked``, ``MaskPixels``, ``ContrastiveLoss``), as
torchvision offers them.
"""

from . import reference
from ._backend import BACKENDS, not_supported_reasons
from ._checks import set_value_checks
from .box_iou_batched import box_iou_batched
from .contrastive_loss import contrastive_loss
from .iou_neighbourhood_mask import iou_neighbourhood_mask
from .linear_cross_entropy import fused_linear_cross_entropy
from .mask_pixels import mask_pixels
from .modules import ContrastiveLoss, MaskPixels, RoIAlign, RoIAlignMasked
from .pairwise_similarity import pairwise_similarity
from .roi_align_masked import roi_align, roi_align_masked
from .sample_region_mask import INTERBERT_PAPER, INTERBERT_RELEASED, RegionMaskPreset, sample_region_mask

__all__ = [
    "BACKENDS",
    "INTERBERT_PAPER",
    "INTERBERT_RELEASED",
    "ContrastiveLoss",
    "MaskPixels",
    "RegionMaskPreset",
    "RoIAlign",
    "RoIAlignMasked",
    "box_iou_batched",
    "contrastive_loss",
    "fused_linear_cross_entropy",
    "iou_neighbourhood_mask",
    "mask_pixels",
    "not_supported_reasons",
    "pairwise_similarity",
    "reference",
    "roi_align",
    "roi_align_masked",
    "sample_region_mask",
    "set_value_checks",
]
