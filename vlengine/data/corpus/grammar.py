"""Language of the embedded corpus: captions, VQA pairs, referring expressions.

Captions name objects by (size) colour shape and relate them by position
("a red circle left of a blue square", "from left to right : ..."). Colours are
drawn independently of shapes and positions, so a masked colour or size word is
answerable only by looking at the image: a text-only model can do no better than
the colour prior. ``ATTRIBUTE_WORDS`` lists the words whose masked-LM accuracy
measures the use of the image.
"""

from __future__ import annotations

import numpy as np

from .scenes import COLOUR_NAMES, SHAPES, SIZE_NAMES, SceneObject

COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
RELATIONS = ("left of", "right of", "above", "below")
ATTRIBUTE_WORDS = {"colour": list(COLOUR_NAMES), "size": list(SIZE_NAMES), "shape": list(SHAPES)}
MARGIN = 6.0  # pixels between centres before "left of" etc. is said


def relation(a: SceneObject, b: SceneObject) -> str | None:
    """The spatial relation of ``a`` to ``b`` by box centres, or None if too close to call."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy) and abs(dx) > MARGIN:
        return "left of" if dx < 0 else "right of"
    if abs(dy) > abs(dx) and abs(dy) > MARGIN:
        return "above" if dy < 0 else "below"
    return None


def overlaps(a: SceneObject, b: SceneObject) -> bool:
    return not (a.box[2] < b.box[0] or b.box[2] < a.box[0] or a.box[3] < b.box[1] or b.box[3] < a.box[1])


def phrase(o: SceneObject, rng: np.random.Generator, size_prob: float = 0.5) -> str:
    size, colour, shape = o.words
    return f"{size} {colour} {shape}" if rng.random() < size_prob else f"{colour} {shape}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else " , ".join(items[:-1]) + " and " + items[-1]


def caption(objects: list[SceneObject], rng: np.random.Generator) -> str:
    """One caption of a scene, from a randomly chosen template."""
    n = len(objects)
    kind = int(rng.integers(5))
    if kind == 0 or kind == 4:  # relation between two objects
        for _ in range(10):
            i, j = rng.choice(n, size=2, replace=False)
            a, b = objects[i], objects[j]
            if kind == 4 and overlaps(a, b) and i > j:
                return f"a {phrase(a, rng)} in front of a {phrase(b, rng)}"
            rel = relation(a, b)
            if rel is not None:
                return f"a {phrase(a, rng)} {rel} a {phrase(b, rng)}"
    if kind == 1:  # left-to-right list
        order = sorted(objects, key=lambda o: o.centre[0])
        return "from left to right : " + _join([f"a {phrase(o, rng)}" for o in order])
    if kind == 2:  # count + list
        order = [objects[k] for k in rng.permutation(n)]
        return f"{COUNT_WORDS[n]} shapes : " + _join([f"a {phrase(o, rng)}" for o in order])
    o = objects[int(rng.integers(n))]  # attribute statement
    size, colour, shape = o.words
    return f"the {shape} is {colour}" if rng.random() < 0.5 else f"the {colour} {shape} is {size}"


def captions(objects: list[SceneObject], rng: np.random.Generator, count: int) -> list[str]:
    """``count`` captions, distinct where the grammar allows."""
    out: list[str] = []
    for _ in range(count * 6):
        c = caption(objects, rng)
        if c not in out:
            out.append(c)
        if len(out) == count:
            break
    while len(out) < count:
        out.append(caption(objects, rng))
    return out


def vqa(objects: list[SceneObject], rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` (question, answer) pairs about a scene."""
    n, out = len(objects), []
    for _ in range(count * 4):
        kind = int(rng.integers(5))
        o = objects[int(rng.integers(n))]
        size, colour, shape = o.words
        if kind == 0:
            qa = (f"what colour is the {shape} ?", colour)
        elif kind == 1:
            qa = (f"what size is the {colour} {shape} ?", size)
        elif kind == 2:
            qa = ("how many shapes are there ?", COUNT_WORDS[n])
        elif kind == 3:
            if rng.random() < 0.5:
                qa = (f"is there a {colour} {shape} ?", "yes")
            else:
                other = COLOUR_NAMES[(COLOUR_NAMES.index(colour) + 1 + int(rng.integers(len(COLOUR_NAMES) - 1))) % len(COLOUR_NAMES)]
                qa = (f"is there a {other} {shape} ?", "no")
        else:
            b = objects[int(rng.integers(n))]
            rel = relation(o, b) if b is not o else None
            if rel is None:
                continue
            qa = (f"what shape is {rel} the {b.words[1]} {b.words[2]} ?", shape)
            # the answer must be unique: no other object stands in that relation to b
            if sum(1 for x in objects if x is not b and relation(x, b) == rel) != 1:
                continue
        if qa not in out:
            out.append(qa)
        if len(out) == count:
            break
    return out


def referring(objects: list[SceneObject], rng: np.random.Generator, count: int) -> list[tuple[str, int]]:
    """``count`` (expression, object index) pairs; each expression names exactly one object."""
    n, out = len(objects), []
    for _ in range(count * 4):
        i = int(rng.integers(n))
        o = objects[i]
        size, colour, shape = o.words
        kind = int(rng.integers(3))
        if kind == 0:
            expr = f"the {colour} {shape}"
        elif kind == 1:
            expr = f"the {size} {shape}"
        else:
            j = int(rng.integers(n))
            rel = relation(o, objects[j]) if j != i else None
            if rel is None:
                continue
            expr = f"the {shape} {rel} the {objects[j].words[1]} {objects[j].words[2]}"
        if (expr, i) not in out:
            out.append((expr, i))
        if len(out) == count:
            break
    return out


def vocabulary_words() -> list[str]:
    """Every word the grammar can produce (for the shipped WordPiece vocab)."""
    words = ["a", "the", "is", "of", "and", "from", "to", "shapes", "shape", "in", "front", "there", "what",
             "colour", "size", "how", "many", "are", "yes", "no", "left", "right", "above", "below"]
    return words + list(COLOUR_NAMES) + list(SIZE_NAMES) + list(SHAPES) + list(COUNT_WORDS)
