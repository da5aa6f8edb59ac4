"""Scenes of the embedded corpus: 2-6 coloured shapes on a noisy background.

Every object has a shape (unique within its scene, so "the circle" names one
object), a colour and a size class; later objects are drawn over earlier ones,
and some are placed to overlap an earlier one (so IoU-neighbourhood masking has
neighbours to hide), but never so much that less than ``MIN_VISIBLE`` of an
object stays visible (its colour and shape must stay readable).

Boxes are exact and pixel-inclusive integers (x1, y1, x2, y2): the shape touches
all four sides and covers pixels x1..x2, y1..y2 (the rule ``mask_pixels`` uses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 128  # square images, pixels
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
# Channel values sit far from the 64/128/192 bin edges of the 4x4x4 colour
# histogram in features.py, so colour jitter never moves a colour across a bin.
COLOURS = {
    "red": (230, 30, 30), "green": (30, 160, 30), "blue": (30, 30, 230), "yellow": (230, 230, 30),
    "purple": (160, 30, 160), "orange": (230, 100, 30), "white": (230, 230, 230),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = {"small": (14, 20), "medium": (27, 34), "large": (42, 52)}  # side length range, pixels
SIZE_NAMES = tuple(SIZES)
MIN_OBJECTS, MAX_OBJECTS = 2, 6
MIN_VISIBLE = 0.6
OVERLAP_PROB = 0.4
COLOUR_JITTER = 12
NOISE_STD = 5.0
NUM_CLASSES = len(SHAPES) * len(COLOURS) * len(SIZES)


def class_of(shape: int, colour: int, size: int) -> int:
    """Region class label of an object (what a detector would predict)."""
    return (shape * len(COLOURS) + colour) * len(SIZES) + size


def class_name(label: int) -> str:
    shape, rest = divmod(int(label), len(COLOURS) * len(SIZES))
    colour, size = divmod(rest, len(SIZES))
    return f"{SIZE_NAMES[size]} {COLOUR_NAMES[colour]} {SHAPES[shape]}"


@dataclass
class SceneObject:
    shape: int
    colour: int
    size: int
    box: tuple  # (x1, y1, x2, y2) inclusive pixels
    rgb: tuple  # the drawn colour (jittered)

    @property
    def words(self) -> tuple[str, str, str]:
        return SIZE_NAMES[self.size], COLOUR_NAMES[self.colour], SHAPES[self.shape]

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0

    @property
    def label(self) -> int:
        return class_of(self.shape, self.colour, self.size)


@dataclass
class Scene:
    objects: list            # SceneObject, in drawing order (later on top)
    background: tuple        # base RGB of the background
    noise_seed: int


def _polygon(shape: str, box) -> list | None:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    if shape == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if shape == "diamond":
        return [(cx, y1), (x2, cy), (cx, y2), (x1, cy)]
    if shape == "star":
        rx, ry = (x2 - x1) / 2.0, (y2 - y1) / 2.0
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            r = 1.0 if k % 2 == 0 else 0.45
            pts.append((cx + r * rx * math.cos(a), cy + r * ry * math.sin(a)))
        # the star's points do not reach the bottom edge: stretch vertically so the box is exact
        ys = [p[1] for p in pts]
        lo, hi = min(ys), max(ys)
        return [(p[0], y1 + (p[1] - lo) * (y2 - y1) / (hi - lo)) for p in pts]
    if shape == "cross":
        w, h = x2 - x1, y2 - y1
        a, b = x1 + w / 3.0, x1 + 2 * w / 3.0
        c, d = y1 + h / 3.0, y1 + 2 * h / 3.0
        return [(a, y1), (b, y1), (b, c), (x2, c), (x2, d), (b, d), (b, y2), (a, y2), (a, d), (x1, d), (x1, c), (a, c)]
    return None


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box, fill) -> None:
    """Draws ``shape`` filling the inclusive pixel box."""
    if shape == "circle":
        draw.ellipse(list(box), fill=fill)
    elif shape == "square":
        draw.rectangle(list(box), fill=fill)
    else:
        draw.polygon(_polygon(shape, box), fill=fill)


def _mask(shape: str, box) -> np.ndarray:
    img = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw_shape(ImageDraw.Draw(img), shape, box, 255)
    return np.asarray(img) > 0


def _boxes_touch(a, b, margin: int = 1) -> bool:
    return not (a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1])


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draws a scene: object count, unique shapes, colours, sizes and placements."""
    n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    shapes = rng.permutation(len(SHAPES))[:n]
    objects: list[SceneObject] = []
    visible: list[np.ndarray] = []  # pixels of each placed object still visible
    full_area: list[int] = []       # pixels of each placed object when unoccluded
    for shape in shapes:
        for _attempt in range(50):
            size = int(rng.integers(len(SIZES)))
            lo, hi = SIZES[SIZE_NAMES[size]]
            w, h = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
            if objects and rng.random() < OVERLAP_PROB:
                # near an earlier object, so the two boxes overlap
                ox1, oy1, ox2, oy2 = objects[int(rng.integers(len(objects)))].box
                x1 = int(rng.integers(max(0, ox1 - w + 4), min(IMAGE_SIZE - w, ox2 - 4) + 1)) if ox2 - 4 >= max(0, ox1 - w + 4) else int(rng.integers(0, IMAGE_SIZE - w + 1))
                y1 = int(rng.integers(max(0, oy1 - h + 4), min(IMAGE_SIZE - h, oy2 - 4) + 1)) if oy2 - 4 >= max(0, oy1 - h + 4) else int(rng.integers(0, IMAGE_SIZE - h + 1))
                x1, y1 = min(max(x1, 0), IMAGE_SIZE - w), min(max(y1, 0), IMAGE_SIZE - h)
            else:
                x1, y1 = int(rng.integers(0, IMAGE_SIZE - w + 1)), int(rng.integers(0, IMAGE_SIZE - h + 1))
            box = (x1, y1, x1 + w - 1, y1 + h - 1)
            m = _mask(SHAPES[shape], box)
            ok = True
            for o, vis, full in zip(objects, visible, full_area):
                if _boxes_touch(o.box, box, 0) and (vis & ~m).sum() < MIN_VISIBLE * full:
                    ok = False
                    break
            if ok:
                break
        else:
            continue  # no room for this object: the scene keeps fewer objects
        # a colour no touching object has: a green star on a green triangle would be invisible
        touching = {o.colour for o in objects if _boxes_touch(o.box, box)}
        free = [c for c in range(len(COLOURS)) if c not in touching]
        colour = int(free[int(rng.integers(len(free)))])
        visible = [vis & ~m if _boxes_touch(o.box, box, 0) else vis for o, vis in zip(objects, visible)] + [m]
        full_area.append(int(m.sum()))
        base = np.asarray(COLOURS[COLOUR_NAMES[colour]])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255))
        objects.append(SceneObject(int(shape), colour, size, box, rgb))
    if len(objects) < MIN_OBJECTS:
        return sample_scene(rng)
    background = tuple(int(v) for v in rng.integers(85, 116, 3))
    return Scene(objects, background, int(rng.integers(2**31)))


def render(scene: Scene) -> np.ndarray:
    """RGB uint8 [H, W, 3]: background + noise, objects in order, per-pixel noise on top."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), scene.background)
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        draw_shape(draw, SHAPES[o.shape], o.box, o.rgb)
    arr = np.asarray(img).astype(np.float32)
    noise = np.random.default_rng(scene.noise_seed).standard_normal(arr.shape, dtype=np.float32) * NOISE_STD
    return np.clip(arr + noise, 0, 255).astype(np.uint8)


def whole_image_box() -> tuple:
    """Region 0 of every image (VL-BERT convention): the whole image, inclusive pixels."""
    return (0, 0, IMAGE_SIZE - 1, IMAGE_SIZE - 1)
