"""Raw-image mode: decode with Pillow, resize, normalise, flip, and move the boxes along.

Boxes are pixel-inclusive (x1, y1, x2, y2), VL-BERT's convention and the rule
``mask_pixels`` uses: a box covers pixels x1..x2. Hence a horizontal flip maps
x to (W - 1 - x) and swaps x1 and x2, and resizing scales coordinates by the
same factor as the image (VL-BERT: ``boxes * im_scale``).

Normalisations:
* ``"caffe"``: BGR channel order, 0-255 range, the Detectron/Caffe mean
  (102.9801, 115.9465, 122.7717) subtracted, no std (VL-BERT's ResNet-101 C4).
* ``"torchvision"``: RGB, /255, ImageNet mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225) (torchvision's pretrained ResNets).
Either way a pixel at the dataset mean becomes 0, which is what pixel masking fills.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

CAFFE_BGR_MEAN = np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def decode_image(data, source: str = "image") -> Image.Image:
    """Bytes, a path or a PIL image -> RGB PIL image; ValueError naming ``source`` if undecodable."""
    if isinstance(data, Image.Image):
        return data.convert("RGB")
    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{source}: cannot decode image ({e})") from None
    return img.convert("RGB")


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """Scale that makes the short side ``min_size`` unless the long side would pass ``max_size``."""
    short, long = min(height, width), max(height, width)
    return min(min_size / short, max_size / long)


def normalise(rgb: np.ndarray, mode: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W] in the model's input convention."""
    x = rgb.astype(np.float32)
    if mode == "caffe":
        x = x[:, :, ::-1] - CAFFE_BGR_MEAN
    elif mode == "torchvision":
        x = (x / 255.0 - TORCHVISION_MEAN) / TORCHVISION_STD
    else:
        raise ValueError(f"normalisation must be 'caffe' or 'torchvision', got {mode!r}")
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Horizontal flip of inclusive pixel boxes in an image ``width`` pixels wide."""
    out = boxes.copy()
    out[:, 0] = width - 1 - boxes[:, 2]
    out[:, 2] = width - 1 - boxes[:, 0]
    return out


class ImageTransform:
    """Decode -> resize -> (random) horizontal flip -> normalise, boxes transformed alike.

    Args:
        min_size / max_size: resize so the short side is ``min_size`` and the
            long side at most ``max_size`` (VL-BERT: 600 / 1000). None keeps the size.
        normalisation: ``"caffe"`` or ``"torchvision"`` (see module docstring).
        flip_prob: probability of a horizontal flip (drawn from the item's generator,
            so it is reproducible from (seed, epoch, index)).
    """

    def __init__(self, min_size: int | None = 600, max_size: int | None = 1000, normalisation: str = "caffe",
                 flip_prob: float = 0.0):
        if normalisation not in ("caffe", "torchvision"):
            raise ValueError(f"normalisation must be 'caffe' or 'torchvision', got {normalisation!r}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if (min_size is None) != (max_size is None) or (min_size is not None and not 0 < min_size <= max_size):
            raise ValueError(f"need 0 < min_size <= max_size (or both None), got {min_size}, {max_size}")
        self.min_size, self.max_size = min_size, max_size
        self.normalisation, self.flip_prob = normalisation, flip_prob

    def draw_flip(self, rng: np.random.Generator | None) -> bool:
        """Whether to flip, drawn from ``rng`` with probability ``flip_prob``."""
        return self.flip_prob > 0 and (rng if rng is not None else np.random.default_rng()).random() < self.flip_prob

    def __call__(self, data, boxes, rng: np.random.Generator | None = None, source: str = "image",
                 flip: bool | None = None):
        """Returns (image float32 [3, H, W], boxes float32 [N, 4], image_size float32 (H, W)).

        ``flip`` forces the decision (the dataset draws it so it can also swap
        "left"/"right" in the caption); None draws it from ``rng``."""
        img = decode_image(data, source)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        w0, h0 = img.size
        if self.min_size is not None:
            scale = resize_scale(h0, w0, self.min_size, self.max_size)
            w, h = max(1, int(round(w0 * scale))), max(1, int(round(h0 * scale)))
            if (w, h) != (w0, h0):
                img = img.resize((w, h), Image.BILINEAR)
                boxes = boxes * np.array([w / w0, h / h0, w / w0, h / h0], dtype=np.float32)
        w, h = img.size
        boxes = np.clip(boxes, 0, np.array([w - 1, h - 1, w - 1, h - 1], dtype=np.float32))
        rgb = np.asarray(img)
        if self.draw_flip(rng) if flip is None else flip:
            rgb = rgb[:, ::-1]
            boxes = flip_boxes(boxes, w)
        return normalise(rgb, self.normalisation), boxes.astype(np.float32), np.array([h, w], dtype=np.float32)
