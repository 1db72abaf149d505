"""Photographic degradations of synthetic documents, each with exact ground truth.

A degraded document is a *photo*: the card is laid on a desk-like texture larger than itself,
so that the reader must find it. Geometric degradations (rotation, perspective) change the
homography that places the flat card and recompose the photo from it; photometric ones (blur,
JPEG, glare, low light, low resolution) are applied to the photo and kept as steps, replayed
in order whenever a later geometric step recomposes it. So degradations can be applied in any
order, a photometric effect always lands on the whole scene as a camera's would, and the truth
quads (card rectangles mapped by the final homography and rescaling) stay exact.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from faceledger.document.geometry import (
    Matrix,
    apply,
    homography,
    quad_array,
    rotation,
    translation,
    warp,
)
from faceledger.document.synth_card import RenderedDocument, Step
from faceledger.errors import InvalidArgument
from faceledger.types import Pixels

GEOMETRIC = ("rotation", "rotation_90", "rotation_180", "perspective")
PHOTOMETRIC = ("blur", "jpeg", "glare", "low_light", "low_resolution")
DEGRADATIONS = GEOMETRIC + PHOTOMETRIC
"""``rotation`` turns by ±3–25° (severity 0–1); ``rotation_90`` and ``rotation_180`` by a
quarter and a half turn; ``perspective`` tilts the card away (keystone 4–20 %)."""

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Frame:
    """The photo being degraded and where the card is in it."""

    pixels: Pixels
    mm: float
    """Pixels per millimetre of the card, about (perspective makes it vary)."""
    mrz: npt.NDArray[np.float64]
    card: npt.NDArray[np.float64]


def degrade(doc: RenderedDocument, kind: str, severity: float, seed: int) -> RenderedDocument:
    """``doc`` photographed with one more degradation; severity runs from 0 (mild) to 1."""
    if kind not in DEGRADATIONS:
        raise InvalidArgument(f"degradation must be one of {', '.join(DEGRADATIONS)}; not {kind!r}")
    step = Step(kind, float(np.clip(severity, 0.0, 1.0)), seed)
    if doc.desk_seed is None:
        doc = place_on_desk(doc, seed)
    doc = replace(doc, degradations=(*doc.degradations, step))
    if kind in GEOMETRIC:
        moved = _geometric(doc, step) @ doc.card_to_image
        h, canvas = _fit_canvas(doc, moved, seed)
        return _compose(replace(doc, card_to_image=h, canvas=canvas))
    # the photo so far is the composition with the earlier steps: add this one on top
    scale = doc.pixels.shape[1] / doc.canvas[0]
    photo, factor = _PHOTOMETRIC[kind](_frame(doc, doc.pixels, scale), step)
    return replace(doc, steps=(*doc.steps, step)).with_geometry(
        photo, doc.card_to_image, scale * factor
    )


def place_on_desk(doc: RenderedDocument, seed: int) -> RenderedDocument:
    """Lay the flat card on a desk texture with a random margin around it."""
    placed = replace(doc, desk_seed=seed)
    h, canvas = _fit_canvas(placed, doc.card_to_image, seed)
    return _compose(replace(placed, card_to_image=h, canvas=canvas))


def _card_corners(doc: RenderedDocument) -> npt.NDArray[np.float64]:
    h, w = doc.card.shape[:2]
    return np.array([(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)])


def _fit_canvas(doc: RenderedDocument, h: Matrix, seed: int) -> tuple[Matrix, tuple[int, int]]:
    """Translate the placed card so that it sits inside a canvas with 8–16 % margins."""
    rng = np.random.default_rng([seed, 11])
    corners = apply(h, _card_corners(doc))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    side = float((hi - lo).max())
    margins = rng.uniform(0.08, 0.16, size=4) * side
    moved = translation(margins[0] - lo[0], margins[1] - lo[1]) @ h
    size = hi - lo + margins[:2] + margins[2:]
    return moved, (math.ceil(size[0]), math.ceil(size[1]))


def _geometric(doc: RenderedDocument, step: Step) -> Matrix:
    """The homography of one geometric step, applied after the card's current placement."""
    rng = np.random.default_rng([step.seed, 13])
    centre = apply(doc.card_to_image, _card_corners(doc)).mean(axis=0)
    if step.kind == "perspective":
        return (
            doc.card_to_image
            @ _keystone(doc, step.severity, rng)
            @ np.linalg.inv(doc.card_to_image)
        )
    if step.kind == "rotation":
        angle = (3.0 + 22.0 * step.severity) * float(rng.choice([-1.0, 1.0]))
    else:
        angle = 180.0 if step.kind == "rotation_180" else float(rng.choice([-90.0, 90.0]))
    return rotation(angle, float(centre[0]), float(centre[1]))


def _keystone(doc: RenderedDocument, severity: float, rng: np.random.Generator) -> Matrix:
    """Card frame → card frame: one edge shrunk by 4–20 % and pulled in, as when tilted."""
    corners = _card_corners(doc)
    w, h = corners[2]
    k = 0.04 + 0.16 * severity
    side = int(rng.integers(4))
    moved = corners.copy()
    near = [(0, 1), (1, 2), (2, 3), (3, 0)][side]
    centre = np.array([w, h]) / 2
    for i in near:
        moved[i] = corners[i] + (centre - corners[i]) * k
    return homography([tuple(p) for p in corners], [tuple(p) for p in moved])


def _compose(doc: RenderedDocument) -> RenderedDocument:
    """Place the card on its desk by its homography, then replay the photometric steps."""
    assert doc.desk_seed is not None
    photo = _place(doc.card, doc.card_to_image, doc.canvas, doc.desk_seed, doc.px_per_mm)
    scale = 1.0
    for step in doc.steps:
        frame = _frame(doc, photo, scale)
        photo, factor = _PHOTOMETRIC[step.kind](frame, step)
        scale *= factor
    return doc.with_geometry(photo, doc.card_to_image, scale)


def _frame(doc: RenderedDocument, photo: Pixels, scale: float) -> _Frame:
    total = np.diag([scale, scale, 1.0]) @ doc.card_to_image
    mrz = apply(total, quad_array(doc.card_quads()[0]))
    card = apply(total, _card_corners(doc))
    mm = doc.px_per_mm * scale * math.sqrt(abs(np.linalg.det(doc.card_to_image[:2, :2])))
    return _Frame(photo, mm, mrz, card)


def _place(card: Pixels, h: Matrix, canvas: tuple[int, int], seed: int, mm: float) -> Pixels:
    desk = _desk(canvas, seed)
    mask = warp(
        Image.new("L", (card.shape[1], card.shape[0]), 255), h, canvas, Image.Resampling.BILINEAR
    )
    shadow = mask.filter(ImageFilter.GaussianBlur(1.2 * mm))
    shadow = shadow.transform(
        canvas, Image.Transform.AFFINE, (1, 0, -0.5 * mm, 0, 1, -0.8 * mm), fillcolor=0
    )
    dark = np.asarray(shadow, np.float32)[..., None] * np.float32(0.45 / 255.0)
    ground = Image.fromarray(np.clip(desk * (1.0 - dark), 0, 255).astype(np.uint8))
    ground.paste(warp(Image.fromarray(card), h, canvas), (0, 0), mask)
    return np.ascontiguousarray(np.asarray(ground, dtype=np.uint8))


def _desk(size: tuple[int, int], seed: int) -> Floats:
    """Wood-grain-like texture: warped stripes and low-frequency shading (computed at half
    resolution: they are smooth), plus fine grain noise."""
    rng = np.random.default_rng([seed, 17])
    w, h = size
    hw, hh = (w + 1) // 2, (h + 1) // 2
    palette = np.array(
        [[150, 108, 70], [98, 72, 52], [122, 120, 114], [176, 160, 132], [70, 74, 82]], np.float32
    )
    base = palette[int(rng.integers(len(palette)))] + rng.uniform(-10, 10, 3).astype(np.float32)
    warp_field = _smooth_noise(rng, (hh, hw), 6)
    shade = _smooth_noise(rng, (hh, hw), 3)
    y = np.arange(hh, dtype=np.float32)[:, None]
    period = np.float32(rng.uniform(4.5, 12.0))
    grain = np.sin(np.float32(2 * np.pi) * (y / period + np.float32(5.0) * warp_field))
    level = np.float32(1.0) + np.float32(0.07) * grain + np.float32(0.12) * (shade - 0.5)
    full = Image.fromarray(level.astype(np.float32), mode="F").resize(
        (w, h), Image.Resampling.BILINEAR
    )
    noise = rng.standard_normal(size=(h, w), dtype=np.float32) * np.float32(3.0)
    img: Floats = base[None, None, :] * np.asarray(full)[..., None] + noise[..., None]
    return img


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> Floats:
    """Uniform noise on a coarse grid, upsampled bicubically: soft blotches in [0, 1]."""
    coarse = Image.fromarray(rng.random((cells, cells)).astype(np.float32), mode="F")
    out: Floats = np.asarray(coarse.resize((shape[1], shape[0]), Image.Resampling.BICUBIC))
    return out


def _blur(frame: _Frame, step: Step) -> tuple[Pixels, float]:
    """Out of focus (gaussian) or camera shake (a straight motion streak), by a coin."""
    rng = np.random.default_rng([step.seed, 19])
    scale = frame.mm / 12.0
    if rng.random() < 0.5:
        radius = (0.6 + 2.4 * step.severity) * scale
        img = Image.fromarray(frame.pixels).filter(ImageFilter.GaussianBlur(radius))
        return np.asarray(img, dtype=np.uint8), 1.0
    length = (3.0 + 13.0 * step.severity) * scale
    angle = rng.uniform(0, math.pi)
    return _motion(frame.pixels, length, angle), 1.0


def _motion(pixels: Pixels, length: float, angle: float) -> Pixels:
    n = max(2, round(length))
    pad = n + 1
    src = np.pad(pixels.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = pixels.shape[:2]
    acc = np.zeros((h, w, 3), np.float32)
    for i in range(n):
        t = i - (n - 1) / 2
        dx, dy = round(t * math.cos(angle)), round(t * math.sin(angle))
        acc += src[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return (acc / n + 0.5).clip(0, 255).astype(np.uint8)


def _jpeg(frame: _Frame, step: Step) -> tuple[Pixels, float]:
    quality = round(60 - 50 * step.severity)
    buffer = io.BytesIO()
    Image.fromarray(frame.pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8), 1.0


def _glare(frame: _Frame, step: Step) -> tuple[Pixels, float]:
    """A bright elliptical highlight; the more severe, the nearer the MRZ and the whiter."""
    rng = np.random.default_rng([step.seed, 23])
    card, mrz = frame.card, frame.mrz
    spot = card[0] + (card[2] - card[0]) * rng.uniform(0.25, 0.75, 2)
    target = mrz[int(rng.integers(4))] * 0.6 + mrz.mean(axis=0) * 0.4
    centre = spot + (target - spot) * step.severity
    span = float(np.linalg.norm(card[1] - card[0]))
    rx, ry = span * rng.uniform(0.12, 0.22), span * rng.uniform(0.06, 0.12)
    tilt = rng.uniform(0, math.pi)
    h, w = frame.pixels.shape[:2]
    step_px = 8  # the highlight is smooth: compute it on a coarse grid, then upsample
    y, x = np.mgrid[0 : h + step_px : step_px, 0 : w + step_px : step_px].astype(np.float32)
    u = (x - centre[0]) * math.cos(tilt) + (y - centre[1]) * math.sin(tilt)
    v = -(x - centre[0]) * math.sin(tilt) + (y - centre[1]) * math.cos(tilt)
    d2 = (u / rx) ** 2 + (v / ry) ** 2
    coarse = (0.55 + 0.43 * step.severity) * np.exp(-(d2**1.5))
    full = Image.fromarray(coarse.astype(np.float32), mode="F").resize(
        (x.shape[1] * step_px, x.shape[0] * step_px), Image.Resampling.BILINEAR
    )
    strength = np.asarray(full, dtype=np.float32)[:h, :w, None]
    img = frame.pixels.astype(np.float32)
    white = np.array([255, 252, 240], np.float32)
    out = img + (white - img) * strength
    return np.clip(out, 0, 255).astype(np.uint8), 1.0


def _low_light(frame: _Frame, step: Step) -> tuple[Pixels, float]:
    """Dark, warm-tinted, noisy: a phone photo in a dim room."""
    rng = np.random.default_rng([step.seed, 29])
    gain = 0.55 - 0.35 * step.severity
    cast = np.array([1.0, 0.93, 0.8], np.float32) * np.float32(gain)
    sigma = 2.0 + 10.0 * step.severity
    noise = rng.normal(0.0, sigma, size=frame.pixels.shape).astype(np.float32)
    out = frame.pixels.astype(np.float32) * cast + noise
    return out.clip(0, 255).astype(np.uint8), 1.0


def _low_resolution(frame: _Frame, step: Step) -> tuple[Pixels, float]:
    """Downscale to 6–4 px/mm of card; by a coin, scale back up (a zoomed phone photo)."""
    rng = np.random.default_rng([step.seed, 31])
    factor = min(1.0, (6.0 - 2.0 * step.severity) / frame.mm)
    h, w = frame.pixels.shape[:2]
    small = Image.fromarray(frame.pixels).resize(
        (max(1, round(w * factor)), max(1, round(h * factor))),
        Image.Resampling.BILINEAR,
        reducing_gap=None,
    )
    if rng.random() < 0.5:
        back = small.resize((w, h), Image.Resampling.BICUBIC)
        return np.asarray(back, dtype=np.uint8), 1.0
    return np.asarray(small, dtype=np.uint8), small.width / w


_PHOTOMETRIC: dict[str, Callable[[_Frame, Step], tuple[Pixels, float]]] = {
    "blur": _blur,
    "jpeg": _jpeg,
    "glare": _glare,
    "low_light": _low_light,
    "low_resolution": _low_resolution,
}
