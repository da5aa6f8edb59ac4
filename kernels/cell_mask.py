"""The Triton path's own builder of the [N, H, W] byte plane of masked cells.

The Triton RoIAlign and pixel-masking kernels read which cells VL-BERT's
pixel masking covers from this plane. It is built here, not by the pure-PyTorch
oracle (vlengine/ops/reference/masked_cells.py), so that the reference stays an
independent check of this path and nothing in vlengine.kernels imports
vlengine.ops (the C++ path has its own builder too).

One program per masked box stores 1 over the box's rectangle, a block of
columns at a time. Overlapping boxes write the same value, so no atomics are
needed; the work is the boxes' total area, not N * H * W per box.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

# Not autotuned: the kernel is launch-bound (its work is the boxes' area, a few thousand
# cells). An unmeasured default: measure when a GPU is lent.
_BLOCK_X = 128


@triton.jit
def _fill_boxes_kernel(bounds_ptr, plane_ptr, H, W, BLOCK_X: tl.constexpr):
    box = tl.program_id(0)
    row = bounds_ptr + box * 5
    n = tl.load(row).to(tl.int64)
    x0 = tl.load(row + 1)
    x1 = tl.load(row + 2)
    y0 = tl.load(row + 3)
    y1 = tl.load(row + 4)
    plane = plane_ptr + n * H * W
    ones = tl.full([BLOCK_X], 1, dtype=tl.uint8)
    for y in range(y0, y1 + 1):  # empty boxes (x0 > x1 or y0 > y1) loop zero times
        for xs in range(x0, x1 + 1, BLOCK_X):
            xs_block = xs + tl.arange(0, BLOCK_X)
            tl.store(plane + y * W + xs_block, ones, mask=xs_block <= x1)


def cell_bounds(boxes: torch.Tensor, height: int, width: int, scale: float) -> torch.Tensor:
    """[M, 5] int32 (n, x0, x1, y0, y1): the inclusive cell range of each box, clamped to the map.

    Box (n, x1, y1, x2, y2) covers floor(x1*s) <= x <= floor(x2*s) and
    floor(y1*s) <= y <= floor(y2*s) (VL-BERT's ``[int(y1):int(y2)+1, ...]``),
    with coordinates scaled in float64 as every backend does. A box off the map
    gets an empty range (lower bound above the upper one).
    """
    b = boxes.detach().to(torch.float64)
    x0 = torch.floor(b[:, 1] * scale).clamp(min=0, max=width)
    x1 = torch.floor(b[:, 3] * scale).clamp(min=-1, max=width - 1)
    y0 = torch.floor(b[:, 2] * scale).clamp(min=0, max=height)
    y1 = torch.floor(b[:, 4] * scale).clamp(min=-1, max=height - 1)
    return torch.stack([b[:, 0], x0, x1, y0, y1], dim=1).to(torch.int32).contiguous()


def masked_cell_plane(boxes: torch.Tensor, batch_size: int, height: int, width: int,
                      scale: float = 1.0) -> torch.Tensor:
    """[N, H, W] uint8: 1 where some box of that image covers the cell, else 0."""
    plane = torch.zeros((batch_size, height, width), dtype=torch.uint8, device=boxes.device)
    if boxes.shape[0] == 0 or plane.numel() == 0:
        return plane
    bounds = cell_bounds(boxes, height, width, scale)
    wrap_triton(_fill_boxes_kernel)[(bounds.shape[0],)](bounds, plane, height, width, BLOCK_X=_BLOCK_X)
    return plane
