"""Random box batches with the hard cases built in, and brute-force numpy oracles,
for the IoU tests (box_iou_batched, iou_neighbourhood_mask, sample_region_mask)."""

from __future__ import annotations

import numpy as np
import torch
from backend_cases import backend_params  # noqa: F401 - re-exported for the IoU tests


def random_boxes(b: int, n: int, rng: torch.Generator, dtype=torch.float32, grid: bool = True,
                 special: bool = True) -> torch.Tensor:
    """[b, n, 4] boxes mixing random ones with identical, zero-area, touching and nested boxes.

    ``grid`` snaps coordinates to halves so ties and exact edge contacts really happen;
    ``special=False`` keeps only plain random boxes (for gradcheck, which needs
    differentiable points).
    """
    xy = torch.rand(b, n, 2, generator=rng, dtype=torch.float64) * 40
    wh = torch.rand(b, n, 2, generator=rng, dtype=torch.float64) * 25
    boxes = torch.cat([xy, xy + wh], dim=-1)
    if grid:
        boxes = (boxes * 2).round() / 2
    if special and n >= 2:
        kind = torch.randint(0, 6, (b, n), generator=rng)
        prev = boxes.roll(1, dims=1)
        identical = prev
        zero_area = torch.cat([prev[..., :2], prev[..., :2]], dim=-1)           # a point
        flat = torch.cat([prev[..., :2], prev[..., 2:3], prev[..., 1:2]], -1)   # zero height
        touching = torch.cat([prev[..., 2:3], prev[..., 1:2], prev[..., 2:3] + 3, prev[..., 3:4]], -1)
        nested = torch.cat([prev[..., :2] + 1, torch.maximum(prev[..., 2:] - 1, prev[..., :2] + 1)], -1)
        choices = torch.stack([boxes, identical, zero_area, flat, touching, nested], dim=0)
        boxes = choices.gather(0, kind[None, ..., None].expand(1, b, n, 4))[0]
    return boxes.to(dtype)


def numpy_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] -> [N, M], one pair at a time in Python floats (0 for an empty union)."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a.tolist()):
        for j, q in enumerate(b.tolist()):
            w = max(min(p[2], q[2]) - max(p[0], q[0]), 0.0)
            h = max(min(p[3], q[3]) - max(p[1], q[1]), 0.0)
            inter = w * h
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def numpy_neighbourhood(boxes, valid, anchors, threshold, inclusive) -> np.ndarray:
    """The masking rule written out per image and per box (float64 IoU)."""
    boxes, valid, anchors = (t.detach().cpu().double().numpy() if t.is_floating_point() else t.cpu().numpy()
                             for t in (boxes, valid, anchors))
    out = np.zeros(valid.shape, dtype=bool)
    for img in range(valid.shape[0]):
        iou = numpy_iou(boxes[img], boxes[img])
        for i in range(valid.shape[1]):
            if not valid[img, i]:
                continue
            for j in range(valid.shape[1]):
                if valid[img, j] and anchors[img, j]:
                    passes = iou[i, j] >= threshold if inclusive else iou[i, j] > threshold
                    if i == j or passes:
                        out[img, i] = True
    return out


def opcheck_utils(backend: str, device: str) -> tuple[str, ...]:
    """opcheck's tests; under Triton's CPU interpreter the kernel cannot run on the
    functional tensors of the AOT-dispatch test (it reads real data pointers), so
    that one test runs only on a GPU."""
    utils = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    return utils[:3] if backend == "triton" and device == "cpu" else utils
