"""The work each op must do, from its shapes: bytes it must move and FLOPs it must compute.

These are the *compulsory* costs of the operation, not of one implementation:
every input read once, every output written once, and the arithmetic the
result needs (no recomputation, no temporaries, no atomics counted). A kernel
that moves more (a masked copy of the input, a B x B matrix in memory) is
measured against the same numbers, so "achieved GB/s" is the op's useful
traffic per second and a provider's fraction of the device's peak says how far
it is from the hardware's limit. Conventions: a multiply and an add are two
FLOPs; comparisons and min/max count as one FLOP where they are the work
(IoU); bools are one byte; indices as the op receives them.

Each function returns a ``Cost(bytes, flops)``; ``mode`` is "forward",
"backward" or "both" (forward + backward) where the op has a gradient.
"""

from __future__ import annotations

from typing import NamedTuple


class Cost(NamedTuple):
    bytes: float
    flops: float

    def __add__(self, other):  # costs of two passes add up
        return Cost(self.bytes + other.bytes, self.flops + other.flops)


def _check_mode(mode: str) -> None:
    if mode not in ("forward", "backward", "both"):
        raise ValueError(f"mode must be 'forward', 'backward' or 'both', got {mode!r}")


def roi_align_cost(n: int, c: int, h: int, w: int, rois: int, output: int, samples_per_bin: int,
                   masked_boxes: int = 0, element_size: int = 4, mode: str = "forward") -> Cost:
    """RoIAlign (masked or not) of an [n, c, h, w] map, ``rois`` RoIs, ``output`` x ``output`` bins,
    ``samples_per_bin`` x ``samples_per_bin`` bilinear samples per bin (the fixed sampling ratio).

    forward:  reads the map once (n c h w), the RoIs (rois x 5) and masked boxes (masked x 5, fp32),
              writes rois x c x output^2; per sample 4 taps, each a multiply-add: 8 FLOPs, and one
              multiply per bin for the average. The masking itself is a per-cell test, no arithmetic.
    backward: reads the output gradient, writes the map's gradient once; the same 8 FLOPs per sample
              (4 weights times the gradient, 4 accumulations) and one multiply per bin.
    The map is counted once even where RoIs overlap or leave parts of it unread: a lower bound on
    traffic that VL-BERT's 100-300 RoIs per image come close to.
    """
    _check_mode(mode)
    out_elems = rois * c * output * output
    map_bytes = n * c * h * w * element_size
    box_bytes = (rois + masked_boxes) * 5 * 4
    flops = out_elems * (8 * samples_per_bin * samples_per_bin + 1)
    forward = Cost(map_bytes + box_bytes + out_elems * element_size, flops)
    backward = Cost(out_elems * element_size + box_bytes + map_bytes, flops)
    return {"forward": forward, "backward": backward, "both": forward + backward}[mode]


def mask_pixels_cost(c: int, covered_pixels: int, element_size: int = 4, boxes: int = 0,
                     inplace: bool = True, images_elements: int = 0) -> Cost:
    """Fill the pixels covered by the boxes with a constant: no arithmetic.

    In place, the op must write ``covered_pixels`` (the union of the boxes, per image, summed) x ``c``
    values and read the boxes (boxes x 5 fp32); out of place it also reads and writes the whole image
    tensor (``images_elements`` elements) once. ``covered_pixels`` comes from the boxes, not the shape:
    see ``covered_pixels``.
    """
    written = covered_pixels * c * element_size
    if not inplace:
        written = 2 * images_elements * element_size
    return Cost(written + boxes * 5 * 4, 0.0)


def covered_pixels(boxes, h: int, w: int) -> int:
    """Pixels of the union of ``boxes`` [K, 5] (batch index, x1, y1, x2, y2; VL-BERT's floor rule,
    clamped to h x w), summed over images: what an in-place mask_pixels must write per channel."""
    import torch

    covered = {}
    for b, x1, y1, x2, y2 in boxes.detach().cpu().tolist():
        plane = covered.setdefault(int(b), torch.zeros(h, w, dtype=torch.bool))
        plane[max(int(y1), 0):min(int(y2) + 1, h), max(int(x1), 0):min(int(x2) + 1, w)] = True
    return int(sum(int(p.sum()) for p in covered.values()))


IOU_PAIR_FLOPS = 13  # 2x(min, max, subtract, clamp) + area product + union (2) + threshold test (multiply, compare)
BOX_AREA_FLOPS = 3   # (x2 - x1) * (y2 - y1)


def iou_neighbourhood_cost(batch: int, n: int, pairs: int | None = None, box_element_size: int = 4) -> Cost:
    """IoU-neighbourhood masking of [batch, n] boxes: reads boxes (4 values each), ``valid`` and
    ``anchors`` (bools), writes the [batch, n] bool mask.

    FLOPs: 13 per (box, anchor) pair tested plus 3 per box for its area; ``pairs`` is the number of
    (valid box, valid anchor) pairs in the batch (the op must test each once), or batch x n x n
    (every box against every box) when not given.
    """
    if pairs is None:
        pairs = batch * n * n
    boxes = batch * n
    return Cost(boxes * 4 * box_element_size + 3 * boxes, pairs * IOU_PAIR_FLOPS + boxes * BOX_AREA_FLOPS)


def anchor_pairs(valid, anchors) -> int:
    """(valid box, valid anchor) pairs of a batch: sum over images of valid count x anchor count."""
    return int(((valid.sum(1)) * ((anchors & valid).sum(1))).sum())


def contrastive_cost(batch: int, dim: int, element_size: int = 4, mode: str = "both") -> Cost:
    """Symmetric InfoNCE (or PWCL) over [batch, dim] text and image embeddings.

    forward:  reads both inputs once; the B x B similarities: 2 B^2 d FLOPs.
    backward: reads both inputs again (their gradients need the other side) and writes both
              gradients; two B x B x d products (d text = P v, d image = P^T t): 4 B^2 d FLOPs.
    Only the matmul FLOPs are counted: the exp / log-sum-exp work is O(B^2) against O(B^2 d),
    and recomputing the similarities in backward (what a tiled kernel does to save memory) is
    not work the loss requires.
    """
    _check_mode(mode)
    inputs = 2 * batch * dim * element_size
    forward = Cost(inputs, 2.0 * batch * batch * dim)
    backward = Cost(2 * inputs, 4.0 * batch * batch * dim)
    return {"forward": forward, "backward": backward, "both": forward + backward}[mode]


def linear_cross_entropy_cost(rows: int, hidden: int, vocab: int, element_size: int = 4,
                              mode: str = "both") -> Cost:
    """Cross-entropy of ``x [rows, hidden] @ W[vocab, hidden]^T`` against int64 labels [rows].

    forward:  reads x, W and the labels once; 2 rows hidden vocab FLOPs for the logits.
    backward: reads x and W again, writes their gradients; d x = P W and d W = P^T x: 4 rows hidden vocab.
    The rows x vocab logits are not compulsory traffic (a fused kernel never stores them).
    """
    _check_mode(mode)
    reads = (rows * hidden + vocab * hidden) * element_size
    forward = Cost(reads + rows * 8, 2.0 * rows * hidden * vocab)
    backward = Cost(2 * reads + rows * 8, 4.0 * rows * hidden * vocab)
    return {"forward": forward, "backward": backward, "both": forward + backward}[mode]
