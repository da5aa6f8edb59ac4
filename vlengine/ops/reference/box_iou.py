"""Pure-PyTorch batched IoU and IoU-neighbourhood masking: the oracles of
vlengine.ops.box_iou_batched and vlengine.ops.iou_neighbourhood_mask.

The IoU expression, its order of operations and its accumulation type are the
ones every compiled backend uses (csrc/include/vlengine/box_iou.h), so an IoU
exactly at the masking threshold compares the same way in all of them:

    inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
    union = (area_a + area_b) - inter
    iou   = inter / union if union > 0 else 0      (never NaN)

float16/bfloat16/float32 boxes are computed in float32, float64 in float64.
"""

from __future__ import annotations

import torch

# Anchors handled per step by the neighbourhood reference: memory is
# B x N x _ANCHOR_CHUNK, never B x N x N.
_ANCHOR_CHUNK = 16


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of broadcastable box tensors ``a[..., 4]`` and ``b[..., 4]`` (already in the accumulation dtype)."""
    left = torch.maximum(a[..., 0], b[..., 0])
    top = torch.maximum(a[..., 1], b[..., 1])
    right = torch.minimum(a[..., 2], b[..., 2])
    bottom = torch.minimum(a[..., 3], b[..., 3])
    inter = (right - left).clamp(min=0) * (bottom - top).clamp(min=0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = (area_a + area_b) - inter
    positive = union > 0
    # Divide by 1 where the union is empty so neither the value nor its gradient is NaN.
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)),
                       torch.zeros_like(inter))


def box_iou_batched(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """[B, N, 4] x [B, M, 4] -> [B, N, M] IoU, in the boxes' dtype."""
    acc = accumulation_dtype(boxes1.dtype)
    iou = pairwise_iou(boxes1.to(acc)[:, :, None, :], boxes2.to(acc)[:, None, :, :])
    return iou.to(boxes1.dtype)


def box_iou_batched_backward(grad: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor):
    """Gradients of box_iou_batched w.r.t. both box tensors, in closed form.

    Written out (rather than autograd through the reference) so that the
    compiled ops' backward is one more plain PyTorch function that
    torch.compile and opcheck can trace. Where the IoU is not differentiable
    (tied edges, w or h exactly 0) it follows torch's own subgradients (ties
    split evenly, no gradient through clamp at 0), so it equals autograd through
    ``pairwise_iou`` everywhere.
    """
    acc = accumulation_dtype(boxes1.dtype)
    a = boxes1.to(acc)[:, :, None, :]
    b = boxes2.to(acc)[:, None, :, :]
    g = grad.to(acc)
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    w = torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)
    h = torch.minimum(ay2, by2) - torch.maximum(ay1, by1)
    wc, hc = w.clamp(min=0), h.clamp(min=0)
    inter = wc * hc
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = (area_a + area_b) - inter
    positive = union > 0
    safe = torch.where(positive, union, torch.ones_like(union))
    zero = torch.zeros_like(g)
    # iou = inter / union with union = area_a + area_b - inter.
    g_inter = torch.where(positive, g * (safe + inter) / (safe * safe), zero)
    g_area = torch.where(positive, -g * inter / (safe * safe), zero)
    # clamp(min=0) passes the gradient only where w > 0 (torch's rule at 0).
    g_w = g_inter * hc * (w > 0).to(acc)
    g_h = g_inter * wc * (h > 0).to(acc)

    def split(x, y, pick_x_when):
        """Share of d min/max going to x: 1 where it alone wins, 1/2 on ties."""
        return torch.where(x == y, torch.full_like(x, 0.5), pick_x_when.to(x.dtype))

    s_right = split(ax2, bx2, ax2 < bx2)     # d min(ax2, bx2) / d ax2
    s_left = split(ax1, bx1, ax1 > bx1)      # d max(ax1, bx1) / d ax1
    s_bottom = split(ay2, by2, ay2 < by2)
    s_top = split(ay1, by1, ay1 > by1)

    ga = torch.stack([
        -g_w * s_left - g_area * (ay2 - ay1),
        -g_h * s_top - g_area * (ax2 - ax1),
        g_w * s_right + g_area * (ay2 - ay1),
        g_h * s_bottom + g_area * (ax2 - ax1),
    ], dim=-1).sum(dim=2)
    gb = torch.stack([
        -g_w * (1 - s_left) - g_area * (by2 - by1),
        -g_h * (1 - s_top) - g_area * (bx2 - bx1),
        g_w * (1 - s_right) + g_area * (by2 - by1),
        g_h * (1 - s_bottom) + g_area * (bx2 - bx1),
    ], dim=-1).sum(dim=1)
    return ga.to(boxes1.dtype), gb.to(boxes2.dtype)


def iou_neighbourhood_mask(boxes: torch.Tensor, valid: torch.Tensor, anchors: torch.Tensor,
                           threshold: float = 0.4, inclusive: bool = False) -> torch.Tensor:
    """[B, N] bool: valid and (an anchor, or IoU with a valid anchor of the same image > threshold).

    Anchors are compacted to the front of each row, then handled
    ``_ANCHOR_CHUNK`` at a time, so memory is B x N x chunk, not B x N x N.
    """
    bsz, n = valid.shape
    is_anchor = valid & anchors
    masked = is_anchor.clone()
    if bsz == 0 or n == 0:
        return masked
    counts = is_anchor.sum(dim=1)
    most = int(counts.max())
    if most == 0:
        return masked
    acc = accumulation_dtype(boxes.dtype)
    b = boxes.to(acc)
    # Stable sort of "not an anchor": each row's anchor indices first, in order.
    order = torch.argsort((~is_anchor).to(torch.int8), dim=1, stable=True)[:, :most]
    limit = torch.tensor(threshold, dtype=acc, device=boxes.device)
    slots = torch.arange(most, device=boxes.device)
    for start in range(0, most, _ANCHOR_CHUNK):
        idx = order[:, start:start + _ANCHOR_CHUNK]                             # [B, C]
        present = slots[start:start + idx.shape[1]][None, :] < counts[:, None]  # [B, C]
        anchor_boxes = b.gather(1, idx[..., None].expand(-1, -1, 4))            # [B, C, 4]
        iou = pairwise_iou(b[:, :, None, :], anchor_boxes[:, None, :, :])       # [B, N, C]
        hit = (iou >= limit) if inclusive else (iou > limit)
        masked |= (hit & present[:, None, :]).any(dim=2)
    return masked & valid
