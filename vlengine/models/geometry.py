"""VL-BERT's sin/cos box geometry embedding (``common/utils/bbox.py: coordinate_embeddings``)."""

from __future__ import annotations

import torch

from .config import BOX_FORMS


def box_geometry_embedding(boxes: torch.Tensor, image_size: torch.Tensor, num_frequencies: int = 256,
                           wave_length: float = 1000.0, form: str = "centre_size") -> torch.Tensor:
    """Embed boxes as sin and cos of their position relative to the image.

    Each box (x1, y1, x2, y2) becomes a 4-d vector times 100: (xc, yc, w, h) / (W, H)
    with ``form="centre_size"`` (the released code), (x1, y1, x2, y2) / (W, H) with
    ``form="corners"`` (the paper); every one of the four numbers is divided by
    ``wave_length ** (k / num_frequencies)`` for k = 0..num_frequencies-1, and the
    sin and cos of the results are concatenated: 4 x 2 x num_frequencies values
    (2048 for VL-BERT's 256 frequencies).

    Args:
        boxes: [..., R, 4] pixels (x1, y1, x2, y2).
        image_size: [..., 2] (height, width) in pixels, one per image.
        num_frequencies: frequencies per coordinate.
        wave_length: the largest wave length.
        form: "centre_size" or "corners" (``BOX_FORMS``).

    Returns:
        [..., R, 8 * num_frequencies] in ``boxes``' dtype (computed in float32 at least).
    """
    if boxes.shape[-1] != 4:
        raise ValueError(f"box_geometry_embedding: boxes must end in 4 coordinates, got {tuple(boxes.shape)}")
    if image_size.shape[-1] != 2 or image_size.shape[:-1] != boxes.shape[:-2]:
        raise ValueError(f"box_geometry_embedding: image_size must be {tuple(boxes.shape[:-2]) + (2,)} "
                         f"(height, width), got {tuple(image_size.shape)}")
    if form not in BOX_FORMS:
        raise ValueError(f"box_geometry_embedding: form must be one of {BOX_FORMS}, got {form!r}")
    dtype = torch.promote_types(boxes.dtype, torch.float32)
    boxes = boxes.to(dtype)
    height = image_size[..., 0:1].to(dtype)
    width = image_size[..., 1:2].to(dtype)
    x1, y1, x2, y2 = boxes.unbind(-1)
    if form == "corners":
        position = torch.stack((x1 / width, y1 / height, x2 / width, y2 / height), dim=-1) * 100.0
    else:
        position = torch.stack((
            (x1 + x2) / 2 / width,
            (y1 + y2) / 2 / height,
            (x2 - x1) / width,
            (y2 - y1) / height,
        ), dim=-1) * 100.0                                          # [..., R, 4]
    exponents = torch.arange(num_frequencies, dtype=dtype, device=boxes.device) / num_frequencies
    angles = position.unsqueeze(-1) / (wave_length ** exponents)   # [..., R, 4, F]
    embedding = torch.cat((angles.sin(), angles.cos()), dim=-1)     # [..., R, 4, 2F]
    return embedding.flatten(-2)
