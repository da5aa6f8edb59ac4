"""Pure-PyTorch RoIAlign with pixel masking: the oracle of vlengine.ops.roi_align_masked.

Written as the definition: mask the input (VL-BERT's rule on the feature-map
grid), then torchvision's roi_align arithmetic, vectorised over RoIs, bins and
sample points (RoIs with fewer adaptive samples are padded and weighted 0).
It makes a masked copy of the input and gathers every tap: an oracle, not a
fast path. Low precision is computed in float32, float64 in float64.
"""

from __future__ import annotations

import torch

from .masked_cells import masked_cells


def _axis_taps(start, bin_size, grid, pooled: int, size: int, max_grid: int):
    """Sample positions of one axis -> (low, high, w_low, w_high, valid), each [K, pooled, max_grid]."""
    p = torch.arange(pooled, device=start.device, dtype=start.dtype)[None, :, None]
    i = torch.arange(max_grid, device=start.device, dtype=start.dtype)[None, None, :]
    g = grid[:, None, None].to(start.dtype)
    pos = start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / g
    valid = (pos >= -1.0) & (pos <= size) & (i < g)
    # Padding samples (i >= grid, NaN when an aligned RoI has zero size) read cell 0 with weight 0.
    pos = torch.where(valid, pos, torch.zeros_like(pos)).clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = pos - low
    return low, high, 1.0 - frac, frac, valid


def roi_align_masked(input: torch.Tensor, rois: torch.Tensor, masked_boxes: torch.Tensor,
                     output_size: tuple[int, int], spatial_scale: float = 1.0, sampling_ratio: int = -1,
                     aligned: bool = False) -> torch.Tensor:
    ph, pw = output_size
    n_img, channels, height, width = input.shape
    k = rois.shape[0]
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    if k == 0 or input.numel() == 0:
        return input.new_zeros((k, channels, ph, pw))
    x = input.to(acc)
    if masked_boxes.shape[0] > 0:
        covered = masked_cells(masked_boxes, n_img, height, width, spatial_scale)
        x = x.masked_fill(covered[:, None], 0.0)

    r = rois.to(acc)
    offset = 0.5 if aligned else 0.0
    start_w, start_h = r[:, 1] * spatial_scale - offset, r[:, 2] * spatial_scale - offset
    roi_w = r[:, 3] * spatial_scale - offset - start_w
    roi_h = r[:, 4] * spatial_scale - offset - start_h
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio).long()
        grid_w = torch.full_like(roi_w, sampling_ratio).long()
    else:
        grid_h, grid_w = torch.ceil(roi_h / ph).long(), torch.ceil(roi_w / pw).long()
    max_gh, max_gw = max(int(grid_h.max()), 1), max(int(grid_w.max()), 1)
    count = (grid_h * grid_w).clamp(min=1).to(acc)

    y0, y1, wy0, wy1, vy = _axis_taps(start_h, bin_h, grid_h, ph, height, max_gh)   # [K, PH, GH]
    x0, x1, wx0, wx1, vx = _axis_taps(start_w, bin_w, grid_w, pw, width, max_gw)    # [K, PW, GW]
    valid = (vy[:, :, :, None, None] & vx[:, None, None, :, :]).to(acc)            # [K, PH, GH, PW, GW]

    # Gather the four taps from a flat [N*H*W, C] view, accumulating one tap at a time.
    flat = x.permute(0, 2, 3, 1).reshape(-1, channels)
    base = r[:, 0].long()[:, None, None, None, None] * (height * width)
    out = torch.zeros((k, ph, max_gh, pw, max_gw, channels), dtype=acc, device=input.device)
    for ys, wy in ((y0, wy0), (y1, wy1)):
        for xs, wx in ((x0, wx0), (x1, wx1)):
            idx = base + ys[:, :, :, None, None] * width + xs[:, None, None, :, :]
            w = wy[:, :, :, None, None] * wx[:, None, None, :, :] * valid
            out += w[..., None] * flat[idx.reshape(-1)].reshape(*idx.shape, channels)
    out = out.sum(dim=(2, 4)) / count[:, None, None, None]                          # [K, PH, PW, C]
    return out.permute(0, 3, 1, 2).contiguous().to(input.dtype)
