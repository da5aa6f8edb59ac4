"""Which feature-map cells VL-BERT's pixel masking zeroes, as a boolean plane per image."""

from __future__ import annotations

import torch


def masked_cells(boxes: torch.Tensor, batch_size: int, height: int, width: int, scale: float = 1.0) -> torch.Tensor:
    """[N, H, W] bool: True where some box of that image covers the cell.

    A box (n, x1, y1, x2, y2) covers cells floor(x1*scale) <= x <= floor(x2*scale)
    and floor(y1*scale) <= y <= floor(y2*scale), clamped to the map (VL-BERT's
    inclusive slice ``[int(y1):int(y2)+1, int(x1):int(x2)+1]``). Coordinates are
    scaled in float64, as every backend does.

    Built with a 2-D difference array (+1/-1 at the four corners, then two
    cumulative sums), so it costs O(M + N*H*W) with no loop over boxes.
    """
    out_shape = (batch_size, height, width)
    if boxes.shape[0] == 0 or height == 0 or width == 0:
        return torch.zeros(out_shape, dtype=torch.bool, device=boxes.device)
    b = boxes.detach().double()
    n = b[:, 0].long()
    x0 = torch.floor(b[:, 1] * scale).clamp(min=0)
    x1 = torch.floor(b[:, 3] * scale).clamp(max=width - 1)
    y0 = torch.floor(b[:, 2] * scale).clamp(min=0)
    y1 = torch.floor(b[:, 4] * scale).clamp(max=height - 1)
    keep = (x0 <= x1) & (y0 <= y1)
    n, x0, x1, y0, y1 = (t[keep] for t in (n, x0, x1, y0, y1))
    x0, x1, y0, y1 = (t.long() for t in (x0, x1, y0, y1))
    diff = torch.zeros((batch_size, height + 1, width + 1), dtype=torch.int32, device=boxes.device)
    ones = torch.ones_like(n, dtype=torch.int32)
    for ys, xs, sign in ((y0, x0, 1), (y0, x1 + 1, -1), (y1 + 1, x0, -1), (y1 + 1, x1 + 1, 1)):
        diff.index_put_((n, ys, xs), ones * sign, accumulate=True)
    covered = diff.cumsum(1).cumsum(2)[:, :height, :width]
    return covered > 0
