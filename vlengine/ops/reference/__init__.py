"""Pure-PyTorch references of every fused op: the test oracles, the benchmark
baselines, and the fallback when no compiled backend fits. One file per op."""

from .box_iou import box_iou_batched, iou_neighbourhood_mask
from .contrastive import contrastive_loss, contrastive_loss_stats
from .linear_cross_entropy import linear_cross_entropy
from .mask_pixels import mask_pixels
from .masked_cells import masked_cells
from .roi_align import roi_align_masked

__all__ = ["box_iou_batched", "contrastive_loss", "contrastive_loss_stats",
           "iou_neighbourhood_mask", "linear_cross_entropy", "mask_pixels", "masked_cells", "roi_align_masked"]
