"""Composed test videos with known ground truth: London portraits moving over made-up
backgrounds, cut into shots.

Tests and benchmarks use them where real footage has no labels: who is on screen, when,
where, and where the shot cuts are, are all known exactly.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.errors import InvalidArgument
from faceledger.io.decode import load_image
from faceledger.types import Box
from faceledger.video.encode import VideoWriter

__all__ = [
    "Appearance",
    "Shot",
    "compose",
    "default_scenario",
    "face_box",
    "truth_json",
]

# Where the face is in a 600×600 London portrait: dlib's box is about 224 px square, centred
# near (303, 328) (measured on a dozen of them); the crop keeps head and shoulders.
_FACE_CENTRE = (303.0, 328.0)
_FACE_SIZE = 224.0
_CROP = (130, 100, 476, 560)
_FEATHER = 0.15
"""Width of the soft edge of the elliptical mask, as a fraction of its radius."""
_SENSOR_NOISE = 3
"""Per-frame noise, uniform in ±this many grey levels."""
_MIN_FACE_PX = 8

Canvas = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Appearance:
    """One person on screen for a while, moving in a straight line."""

    label: str
    """Ground-truth identity, e.g. ``london:001``."""
    image: Path
    """A 600×600 London portrait."""
    start_s: float
    end_s: float
    start_xy: tuple[float, float]
    """Face centre at ``start_s``, as fractions of the frame's width and height."""
    end_xy: tuple[float, float]
    face_px: int = 110
    """Face height in output pixels (the side of a dlib-style face box, approximately)."""

    def centre_at(self, time_s: float) -> tuple[float, float]:
        """Face centre in fractions of the frame at ``time_s`` (clamped to the range)."""
        span = self.end_s - self.start_s
        f = min(1.0, max(0.0, (time_s - self.start_s) / span)) if span > 0 else 0.0
        return (
            self.start_xy[0] + (self.end_xy[0] - self.start_xy[0]) * f,
            self.start_xy[1] + (self.end_xy[1] - self.start_xy[1]) * f,
        )


@dataclass(frozen=True)
class Shot:
    """A stretch of video with its own procedurally made background."""

    start_s: float
    end_s: float
    seed: int


def face_box(appearance: Appearance, time_s: float, width: int, height: int) -> Box:
    """The ground-truth face box (a square of ``face_px``) in output pixels at ``time_s``."""
    fx, fy = appearance.centre_at(time_s)
    cx, cy, half = fx * width, fy * height, appearance.face_px / 2
    return Box(cx - half, cy - half, cx + half, cy + half)


def compose(
    dest: Path,
    appearances: Sequence[Appearance],
    shots: Sequence[Shot],
    *,
    width: int = 640,
    height: int = 480,
    fps: float = 25.0,
) -> None:
    """Render the scenario to ``dest`` (the codec follows the suffix, see
    :class:`~faceledger.video.encode.VideoWriter`)."""
    _validate(appearances, shots, width, height, fps)
    backgrounds = [_background(shot.seed, width, height) for shot in shots]
    sprites = [_Sprite.load(a) for a in appearances]
    frames = round(shots[-1].end_s * fps)
    noise = np.random.default_rng(shots[0].seed)
    with VideoWriter(Path(dest), width, height, fps) as writer:
        for i in range(frames):
            t = i / fps
            shot = next(k for k, s in enumerate(shots) if t < s.end_s or s is shots[-1])
            canvas = backgrounds[shot].copy()
            for a, sprite in zip(appearances, sprites, strict=True):
                if a.start_s <= t < a.end_s:
                    fx, fy = a.centre_at(t)
                    sprite.paste(canvas, fx * width, fy * height)
            canvas += noise.integers(-_SENSOR_NOISE, _SENSOR_NOISE + 1, canvas.shape, np.int8)
            writer.write(np.clip(canvas, 0, 255).astype(np.uint8))


def truth_json(
    appearances: Sequence[Appearance],
    shots: Sequence[Shot],
    *,
    width: int = 640,
    height: int = 480,
) -> dict[str, Any]:
    """The ground truth as plain JSON: shots, cuts, and each appearance with its face boxes
    (``[left, top, right, bottom]`` pixels of a ``width`` × ``height`` frame) at its ends."""

    def box(a: Appearance, t: float) -> list[float]:
        b = face_box(a, t, width, height)
        return [round(b.left, 2), round(b.top, 2), round(b.right, 2), round(b.bottom, 2)]

    return {
        "width": width,
        "height": height,
        "duration_s": shots[-1].end_s if shots else 0.0,
        "shots": [{"start_s": s.start_s, "end_s": s.end_s, "seed": s.seed} for s in shots],
        "cuts": [s.start_s for s in shots[1:]],
        "labels": sorted({a.label for a in appearances}),
        "appearances": [
            {
                "label": a.label,
                "image": a.image.name,
                "start_s": a.start_s,
                "end_s": a.end_s,
                "start_xy": list(a.start_xy),
                "end_xy": list(a.end_xy),
                "face_px": a.face_px,
                "shot": next(
                    (k for k, s in enumerate(shots) if s.start_s <= a.start_s < s.end_s), None
                ),
                "box_start": box(a, a.start_s),
                "box_end": box(a, a.end_s),
            }
            for a in appearances
        ],
    }


def default_scenario(london_images: Path) -> tuple[list[Appearance], list[Shot], set[str]]:
    """8 s at 25 frames/s in two shots, with two enrolled people (001, 005) and two not
    (004, 006); 001 appears in both shots, so a track of them must break at the cut.

    Returns (appearances, shots, enrolled labels). The video uses the smiling portraits; the
    enrolled people are to be enrolled from their neutral ones.
    """

    def person(
        pid: str, start: float, end: float, a: tuple[float, float], b: tuple[float, float]
    ) -> Appearance:
        return Appearance(
            f"london:{pid}", Path(london_images) / f"{pid}_smiling.jpg", start, end, a, b
        )

    appearances = [
        # shot 1: 001 crosses the top left to right; 004 crosses the bottom the other way
        person("001", 0.2, 3.8, (0.2, 0.27), (0.8, 0.27)),
        person("004", 0.8, 3.6, (0.75, 0.78), (0.3, 0.78)),
        # shot 2: 001 again, lower down; 006 top left and 005 top right, well apart
        person("001", 4.2, 7.6, (0.25, 0.78), (0.75, 0.78)),
        person("005", 4.6, 7.8, (0.8, 0.27), (0.72, 0.28)),
        person("006", 4.4, 6.8, (0.2, 0.27), (0.36, 0.27)),
    ]
    shots = [Shot(0.0, 4.0, seed=1), Shot(4.0, 8.0, seed=2)]
    return appearances, shots, {"london:001", "london:005"}


@dataclass(frozen=True)
class _Sprite:
    """A portrait cropped to head and shoulders, scaled, with a soft elliptical alpha."""

    rgb: Canvas
    alpha: Canvas
    face_x: float
    face_y: float
    """Face centre within the sprite, pixels."""

    @classmethod
    def load(cls, appearance: Appearance) -> _Sprite:
        portrait = Image.fromarray(load_image(appearance.image).pixels)
        if portrait.size != (600, 600):
            portrait = portrait.resize((600, 600), Image.Resampling.LANCZOS)
        scale = appearance.face_px / _FACE_SIZE
        left, top, right, bottom = _CROP
        size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
        crop = portrait.crop(_CROP).resize(size, Image.Resampling.LANCZOS)
        w, h = size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.sqrt(((xs + 0.5) / w * 2 - 1) ** 2 + ((ys + 0.5) / h * 2 - 1) ** 2)
        alpha = np.clip((1.0 - r) / _FEATHER, 0.0, 1.0).astype(np.float32)[..., None]
        rgb = np.asarray(crop, dtype=np.float32)
        return cls(
            rgb=rgb * alpha,
            alpha=alpha,
            face_x=(_FACE_CENTRE[0] - left) * scale,
            face_y=(_FACE_CENTRE[1] - top) * scale,
        )

    def paste(self, canvas: Canvas, cx: float, cy: float) -> None:
        """Blend onto ``canvas`` with the face centre at (cx, cy), clipped at the edges."""
        h, w = self.alpha.shape[:2]
        x0, y0 = round(cx - self.face_x), round(cy - self.face_y)
        cl, ct = max(0, x0), max(0, y0)
        cr, cb = min(canvas.shape[1], x0 + w), min(canvas.shape[0], y0 + h)
        if cr <= cl or cb <= ct:
            return
        sx, sy = slice(cl - x0, cr - x0), slice(ct - y0, cb - y0)
        region = canvas[ct:cb, cl:cr]
        region *= 1.0 - self.alpha[sy, sx]
        region += self.rgb[sy, sx]


def _background(seed: int, width: int, height: int) -> Canvas:
    """A smooth two-colour gradient with low-frequency noise; its hue steps by the golden
    ratio with the seed, so consecutive shots differ clearly. Nothing face-like in it."""
    rng = np.random.default_rng(seed)
    hue = (seed * 0.618033988749895) % 1.0
    light = np.array(colorsys.hsv_to_rgb(hue, 0.55, 0.9), dtype=np.float32) * 255
    dark = np.array(colorsys.hsv_to_rgb((hue + 0.1) % 1.0, 0.7, 0.35), dtype=np.float32) * 255
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    g = xs / width * math.cos(angle) + ys / height * math.sin(angle)
    g = (g - g.min()) / max(1e-6, float(g.max() - g.min()))
    canvas = light * (1 - g[..., None]) + dark * g[..., None]
    blobs = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    smooth = Image.fromarray(blobs).resize((width, height), Image.Resampling.BICUBIC)
    canvas += (np.asarray(smooth, dtype=np.float32) - 127.5) * 0.25
    out: Canvas = np.clip(canvas, 0, 255).astype(np.float32)
    return out


def _validate(
    appearances: Sequence[Appearance],
    shots: Sequence[Shot],
    width: int,
    height: int,
    fps: float,
) -> None:
    if width < 16 or height < 16 or not (math.isfinite(fps) and fps > 0):
        raise InvalidArgument(f"bad video geometry {width}×{height} at {fps} frames/s")
    if not shots:
        raise InvalidArgument("a composed video needs at least one shot")
    edge = 0.0
    for s in shots:
        if abs(s.start_s - edge) > 1e-9 or s.end_s <= s.start_s:
            raise InvalidArgument(
                f"shots must follow each other from 0 s without gaps; got {s.start_s}-{s.end_s}"
                f" after {edge}"
            )
        edge = s.end_s
    for a in appearances:
        if a.end_s <= a.start_s or a.face_px < _MIN_FACE_PX:
            raise InvalidArgument(f"{a.label}: empty time range or face under {_MIN_FACE_PX} px")
        if not any(s.start_s <= a.start_s and a.end_s <= s.end_s for s in shots):
            raise InvalidArgument(
                f"{a.label} ({a.start_s}-{a.end_s} s) spans a shot boundary or lies outside "
                "the shots; split it in two"
            )
