"""Multi-face test images with a known subject: a portrait with bystanders pasted around it.

The held-out benchmark that showed the ``largest`` selection picking bystanders uses crops
centred on one person, often with other people in the frame. This builds such images from
labelled portraits (e.g. ``../shared/data/london``): the subject's face is placed near the
centre of a square crop and one or more bystander faces (other people's portraits) are pasted
around it, some larger than the subject (nearer the camera), some cut by the frame's edge, with
feathered elliptical masks. Deterministic for a given ``random.Random``.

Two further layouts for ``face_selection.py``: :func:`compose_off_centre` (a portrait composed
off-centre, the subject at about a third of the width, with a smaller background face near the
middle) and :func:`compose_scene` (a wider photo, not a crop: the subject large, a few smaller
people anywhere in the frame).

Used by ``face_selection.py`` (which face does each policy pick?) and ``hard_dev.py`` (crops
with bystanders as degraded probes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BoxT = tuple[float, float, float, float]
"""left, top, right, bottom in pixels."""


@dataclass(frozen=True)
class Portrait:
    """A portrait and the box of its face (from a detector run on it)."""

    image: Image.Image
    face: BoxT


@dataclass(frozen=True)
class Composite:
    image: Image.Image
    subject_box: BoxT
    bystander_boxes: tuple[BoxT, ...]
    bystander_scales: tuple[float, ...]
    """Each bystander's face width over the subject's."""


def _face_width(b: BoxT) -> float:
    return b[2] - b[0]


def _centre(b: BoxT) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _place(
    p: Portrait, face_px: float, cx: float, cy: float, size: int | tuple[int, int]
) -> tuple[Image.Image, BoxT]:
    """``p`` scaled so its face is ``face_px`` wide, shifted so the face centre is at (cx, cy)
    of a ``size``² (or ``(width, height)``) canvas; returns the canvas layer (RGBA, outside the
    portrait transparent) and the face box on it."""
    canvas_size = (size, size) if isinstance(size, int) else size
    s = face_px / _face_width(p.face)
    w, h = p.image.size
    scaled = p.image.convert("RGB").resize(
        (max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR
    )
    fx, fy = _centre(p.face)
    ox, oy = round(cx - fx * s), round(cy - fy * s)
    layer = Image.new("RGBA", canvas_size, (0, 0, 0, 0))
    layer.paste(scaled.convert("RGBA"), (ox, oy))
    box = (p.face[0] * s + ox, p.face[1] * s + oy, p.face[2] * s + ox, p.face[3] * s + oy)
    return layer, box


def _overlap(a: BoxT, b: BoxT, margin: float) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


def _paste_head(
    canvas: Image.Image, layer: Image.Image, box: BoxT, face_px: float, keep: list[BoxT]
) -> None:
    """Paste ``layer`` onto ``canvas`` through an elliptical, feathered window around the face
    ``box`` (the head, not the bystander's whole portrait), leaving the faces in ``keep``
    (each with a margin of 10 % of its width) untouched."""
    mask = Image.new("L", canvas.size, 0)
    ex, ey = 0.95 * (box[2] - box[0]), 1.25 * (box[3] - box[1])
    mx, my = _centre(box)
    ImageDraw.Draw(mask).ellipse((mx - ex, my - ey * 0.9, mx + ex, my + ey * 1.1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.06 * face_px)))
    alpha = np.minimum(np.asarray(layer.getchannel("A")), np.asarray(mask))
    # The window is wider than the bystander's head: without this its backdrop would veil the
    # edge of a neighbouring face (the subject's, when a bystander is large and close).
    for k in keep:
        m = 0.1 * (k[2] - k[0])
        x0, y0 = max(0, int(k[0] - m)), max(0, int(k[1] - m))
        alpha[y0 : max(y0, int(k[3] + m) + 1), x0 : max(x0, int(k[2] + m) + 1)] = 0
    layer.putalpha(Image.fromarray(alpha))
    canvas.paste(layer, (0, 0), layer)


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, tuple(rng.randrange(60, 200) for _ in range(3)))


def compose(
    subject: Portrait,
    bystanders: list[Portrait],
    rng: random.Random,
    *,
    size: int = 250,
    face_frac: float = 0.42,
    scale_range: tuple[float, float] = (0.55, 1.5),
) -> Composite:
    """A ``size``² crop centred (± 4 %) on ``subject``'s face, ``face_frac`` of the crop wide,
    with each bystander's face ``scale_range`` × the subject's, placed left or right of it
    (possibly cut by the edge), never covering the subject's face."""
    face_px = face_frac * size
    jitter = 0.04 * size
    cx = size / 2 + rng.uniform(-jitter, jitter)
    cy = size / 2 + rng.uniform(-jitter, jitter)
    base, subject_box = _place(subject, face_px, cx, cy, size)
    canvas = _background(rng, (size, size))
    canvas.paste(base, (0, 0), base)
    boxes: list[BoxT] = []
    scales: list[float] = []
    sides = [-1, 1]
    rng.shuffle(sides)
    for k, by in enumerate(bystanders):
        for _attempt in range(20):
            scale = rng.uniform(*scale_range)
            bw = face_px * scale
            side = sides[k % 2]
            bx = cx + side * (face_px / 2 + bw / 2 + rng.uniform(0.0, 0.15) * size)
            by_ = cy + rng.uniform(-0.25, 0.25) * size
            layer, box = _place(by, bw, bx, by_, size)
            if _overlap(box, subject_box, 0.03 * size) or any(_overlap(box, o, 0) for o in boxes):
                continue
            _paste_head(canvas, layer, box, bw, [subject_box, *boxes])
            boxes.append(box)
            scales.append(scale)
            break
    return Composite(canvas, subject_box, tuple(boxes), tuple(scales))


def compose_off_centre(
    subject: Portrait,
    bystander: Portrait,
    rng: random.Random,
    *,
    size: int = 400,
    face_frac: float = 0.3,
    subject_x: tuple[float, float] = (0.30, 0.36),
    scale_range: tuple[float, float] = (0.35, 0.6),
) -> Composite:
    """A ``size``² portrait composed off-centre: ``subject``'s face (``face_frac`` of the width)
    centred at ``subject_x`` of the width (mirrored at random), vertically central ± 4 %, and
    one smaller background face (``scale_range`` × the subject's) near the middle of the image,
    just clear of the subject's face, so that it is nearer the image centre than the subject.

    Larger than the 250 px crops by default: at 250 px a subject face at a third of the width
    covers the centre, and a background face 0.35 × as large is too small to detect."""
    face_px = face_frac * size
    side = rng.choice([-1, 1])
    cx = size / 2 - side * (0.5 - rng.uniform(*subject_x)) * size
    cy = size / 2 + rng.uniform(-0.04, 0.04) * size
    base, subject_box = _place(subject, face_px, cx, cy, size)
    canvas = _background(rng, (size, size))
    canvas.paste(base, (0, 0), base)
    scale = rng.uniform(*scale_range)
    bw = face_px * scale
    # Up to 6 % of the width past the centre, away from the subject, but clear of its face.
    clear = cx + side * (face_px / 2 + 0.02 * size + bw / 2)
    wanted = size / 2 + side * rng.uniform(0.0, 0.06) * size
    bx = max(clear, wanted) if side > 0 else min(clear, wanted)
    by_ = size / 2 + rng.uniform(-0.12, 0.08) * size
    layer, box = _place(bystander, bw, bx, by_, size)
    _paste_head(canvas, layer, box, bw, [subject_box])
    return Composite(canvas, subject_box, (box,), (scale,))


def compose_scene(
    subject: Portrait,
    others: list[Portrait],
    rng: random.Random,
    *,
    width: int = 800,
    height: int = 600,
    face_frac: tuple[float, float] = (0.18, 0.25),
    scale_range: tuple[float, float] = (0.25, 0.65),
) -> Composite:
    """A ``width`` × ``height`` photo (not a crop around anyone): ``subject``'s face large
    (``face_frac`` of the height), its centre anywhere in the middle half of the width and
    between 30 % and 55 % of the height; each of ``others`` smaller (``scale_range`` × the
    subject's face) anywhere in the frame where it covers no other face."""
    face_px = rng.uniform(*face_frac) * height
    cx = rng.uniform(0.25, 0.75) * width
    cy = rng.uniform(0.30, 0.55) * height
    base, subject_box = _place(subject, face_px, cx, cy, (width, height))
    canvas = _background(rng, (width, height))
    canvas.paste(base, (0, 0), base)
    boxes: list[BoxT] = []
    scales: list[float] = []
    for other in others:
        for _attempt in range(30):
            scale = rng.uniform(*scale_range)
            bw = face_px * scale
            bx = rng.uniform(bw / 2, width - bw / 2)
            by_ = rng.uniform(bw / 2, height - bw)
            layer, box = _place(other, bw, bx, by_, (width, height))
            # Heads keep clear of each other (the pasted ellipse is about twice the face).
            if _overlap(box, subject_box, 0.6 * face_px) or any(
                _overlap(box, o, 0.6 * (o[2] - o[0])) for o in boxes
            ):
                continue
            _paste_head(canvas, layer, box, bw, [subject_box, *boxes])
            boxes.append(box)
            scales.append(scale)
            break
    return Composite(canvas, subject_box, tuple(boxes), tuple(scales))
