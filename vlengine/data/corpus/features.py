"""Precomputed region features of the embedded corpus, computed from pixels only.

The labels and scene description are never used: each box's crop of the
rendered RGB image is turned into a 274-d descriptor, then mapped to 2048-d by a
fixed random projection (seed ``PROJECTION_SEED``, independent of the corpus
seed, so features of every corpus live in one space). The descriptor is:

* colour (70): mean RGB and mean chromaticity of the crop's foreground pixels, and
  their normalised 4x4x4 RGB histogram;
* shape (145): the foreground mask resampled to 12x12 (2x2 area-averaged from a
  24x24 nearest sampling) and its fill ratio;
* size (11): box width and height over the image's, sqrt of the area ratio, and
  that value through 8 Gaussian bumps (so a linear probe separates size classes);
* layout (48): mean RGB of a 4x4 grid over the crop (mostly useful for region 0,
  the whole image).

"Foreground" = pixels whose colour differs by more than ``FG_THRESHOLD`` from the
background colour, estimated as the median of the image's border pixels. The
projection is linear, so anything a linear probe reads from the descriptor
(colour, shape and size: see tests/data/test_corpus.py) it reads from the
2048-d feature too. Values are scaled to unit variance per descriptor group and
stored as float16.
"""

from __future__ import annotations

import numpy as np

FEATURE_DIM = 2048
PROJECTION_SEED = 20240611
FG_THRESHOLD = 40.0
MASK_GRID = 12
HIST_BINS = 4
SIZE_BUMPS = 8
DESCRIPTOR_DIM = 3 + 3 + HIST_BINS ** 3 + MASK_GRID * MASK_GRID + 1 + 3 + SIZE_BUMPS + 48

_PROJECTION: np.ndarray | None = None


def projection() -> np.ndarray:
    """The fixed [DESCRIPTOR_DIM, 2048] float32 projection (Gaussian, 1/sqrt(d) scale)."""
    global _PROJECTION
    if _PROJECTION is None:
        rng = np.random.default_rng(PROJECTION_SEED)
        _PROJECTION = (rng.standard_normal((DESCRIPTOR_DIM, FEATURE_DIM)) / np.sqrt(DESCRIPTOR_DIM)).astype(np.float32)
    return _PROJECTION


def background_colour(image: np.ndarray) -> np.ndarray:
    """Median RGB of the image border (pixel statistics only)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
    return np.median(border, axis=0)


def _grid_sample(a: np.ndarray, n: int) -> np.ndarray:
    h, w = a.shape[:2]
    ys = np.minimum((np.arange(n) + 0.5) * h / n, h - 1).astype(np.int64)
    xs = np.minimum((np.arange(n) + 0.5) * w / n, w - 1).astype(np.int64)
    return a[ys][:, xs]


class _PixelMaps:
    """Per-image maps computed once and sliced per box (pixel data only)."""

    def __init__(self, image: np.ndarray):
        self.H, self.W = image.shape[:2]
        self.rgb = image.astype(np.float32)
        background = background_colour(image)
        self.fg = np.abs(self.rgb - background).max(axis=2) > FG_THRESHOLD
        bins = np.minimum(image // (256 // HIST_BINS), HIST_BINS - 1).astype(np.int64)
        self.colour_bin = (bins[..., 0] * HIST_BINS + bins[..., 1]) * HIST_BINS + bins[..., 2]


_BUMP_CENTRES = np.linspace(0.05, 0.8, SIZE_BUMPS)


def _describe(maps: _PixelMaps, box) -> np.ndarray:
    H, W = maps.H, maps.W
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1 = max(0, min(x1, W - 1)), max(0, min(y1, H - 1))
    x2, y2 = max(x1, min(x2, W - 1)), max(y1, min(y2, H - 1))
    crop = maps.rgb[y1:y2 + 1, x1:x2 + 1]
    fg = maps.fg[y1:y2 + 1, x1:x2 + 1]
    if fg.any():
        pix, flat = crop[fg], maps.colour_bin[y1:y2 + 1, x1:x2 + 1][fg]
    else:  # no foreground (a background-only box): describe all its pixels
        pix, flat = crop.reshape(-1, 3), maps.colour_bin[y1:y2 + 1, x1:x2 + 1].reshape(-1)
    mean = pix.mean(axis=0) / 255.0
    chroma = mean / max(mean.sum(), 1e-6)
    hist = np.bincount(flat, minlength=HIST_BINS ** 3).astype(np.float32) / len(flat)
    fine = _grid_sample(fg.astype(np.float32), 2 * MASK_GRID)
    mask = fine.reshape(MASK_GRID, 2, MASK_GRID, 2).mean(axis=(1, 3)).reshape(-1)
    fill = np.array([fg.mean()], dtype=np.float32)
    bw, bh = (x2 - x1 + 1) / W, (y2 - y1 + 1) / H
    side = np.sqrt(bw * bh)
    bumps = np.exp(-0.5 * ((side - _BUMP_CENTRES) / 0.06) ** 2)
    layout = _grid_sample(crop, 4).reshape(-1) / 255.0 if crop.shape[0] >= 4 and crop.shape[1] >= 4 else \
        np.repeat(crop.reshape(-1, 3).mean(axis=0) / 255.0, 16)
    # group weights put each group at a comparable scale (the mask has many small entries)
    return np.concatenate([
        mean * 2.0, chroma * 4.0, hist * 4.0,
        mask * 1.0, fill * 2.0,
        np.array([bw, bh, side], dtype=np.float32) * 4.0, bumps * 2.0,
        layout * 0.5,
    ]).astype(np.float32)


def describe_boxes(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Float32 [N, DESCRIPTOR_DIM] descriptors of ``boxes`` [N, 4] (inclusive pixels) in ``image`` [H, W, 3] uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    if not len(boxes):
        return np.zeros((0, DESCRIPTOR_DIM), np.float32)
    maps = _PixelMaps(image)
    return np.stack([_describe(maps, b) for b in np.asarray(boxes)])


def project(descriptors: np.ndarray) -> np.ndarray:
    """Descriptors [N, DESCRIPTOR_DIM] -> float16 features [N, 2048]. Batch many images
    into one call: one large matrix product is far faster than many small ones."""
    return (np.asarray(descriptors, np.float32) @ projection()).astype(np.float16)


def region_features(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Float16 [N, 2048] features of ``boxes`` [N, 4] (inclusive pixels) in ``image`` [H, W, 3] uint8."""
    return project(describe_boxes(image, boxes))
