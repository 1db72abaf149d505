"""Plane geometry shared by the document generator and the MRZ locator: quads and homographies.

Coordinates are continuous image coordinates in which pixel ``(i, j)`` covers ``[i, i+1)``:
the convention of Pillow's ``Image.transform``, so a homography computed here warps an image
with no half-pixel drift. A *quad* lists its corners in the reading order of the thing it
bounds (top-left, top-right, bottom-right, bottom-left as the text reads), not in image order:
after a 180° turn its "top-left" corner lies at the image's bottom right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.types import Box, Point

Matrix = npt.NDArray[np.float64]
"""A 3×3 homography mapping source points to destination points (column vectors)."""

Quad = tuple[Point, Point, Point, Point]
"""Four corners in reading order: top-left, top-right, bottom-right, bottom-left."""


def homography(src: Sequence[tuple[float, float]], dst: Sequence[tuple[float, float]]) -> Matrix:
    """The homography taking the four ``src`` points onto the four ``dst`` points.

    Solved as the usual 8×8 linear system (``h33 = 1``); the four points must be in general
    position (no three collinear), which every quad of a real document is.
    """
    a = np.zeros((8, 8), dtype=np.float64)
    b = np.zeros(8, dtype=np.float64)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst, strict=True)):
        a[2 * i] = (x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y)
        a[2 * i + 1] = (0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y)
        b[2 * i], b[2 * i + 1] = u, v
    h = np.linalg.solve(a, b)
    return np.append(h, 1.0).reshape(3, 3)


def translation(dx: float, dy: float) -> Matrix:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def rotation(degrees: float, cx: float, cy: float) -> Matrix:
    """Counter-clockwise on screen (y down) by ``degrees`` about ``(cx, cy)``."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    turn = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    out: Matrix = translation(cx, cy) @ turn @ translation(-cx, -cy)
    return out


def apply(h: Matrix, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map an (N, 2) array of points through ``h``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ h.T
    out: npt.NDArray[np.float64] = q[:, :2] / q[:, 2:3]
    return out


def quad_array(quad: Quad) -> npt.NDArray[np.float64]:
    return np.array([(p.x, p.y) for p in quad], dtype=np.float64)


def to_quad(points: npt.ArrayLike) -> Quad:
    p = np.asarray(points, dtype=np.float64).reshape(4, 2)
    return (
        Point(float(p[0, 0]), float(p[0, 1])),
        Point(float(p[1, 0]), float(p[1, 1])),
        Point(float(p[2, 0]), float(p[2, 1])),
        Point(float(p[3, 0]), float(p[3, 1])),
    )


def rect_quad(left: float, top: float, right: float, bottom: float) -> Quad:
    return to_quad([(left, top), (right, top), (right, bottom), (left, bottom)])


def map_quad(h: Matrix, quad: Quad) -> Quad:
    return to_quad(apply(h, quad_array(quad)))


def quad_box(quad: Quad, width: float | None = None, height: float | None = None) -> Box:
    """The axis-aligned bounds of ``quad``, clipped to the image when its size is given."""
    p = quad_array(quad)
    left, top = float(p[:, 0].min()), float(p[:, 1].min())
    right, bottom = float(p[:, 0].max()), float(p[:, 1].max())
    if width is not None:
        left, right = max(0.0, left), min(float(width), right)
    if height is not None:
        top, bottom = max(0.0, top), min(float(height), bottom)
    return Box(left, top, right, bottom)


def warp(
    image: Image.Image,
    h: Matrix,
    size: tuple[int, int],
    resample: Image.Resampling = Image.Resampling.BICUBIC,
    fill: int | tuple[int, ...] = 0,
) -> Image.Image:
    """Warp ``image`` by ``h`` (source → destination) onto a ``size`` canvas.

    Pillow wants the inverse map as eight coefficients, destination → source, normalised so
    that the last one is 1.
    """
    inv = np.linalg.inv(h)
    inv = inv / inv[2, 2]
    coeffs = tuple(float(c) for c in inv.ravel()[:8])
    return image.transform(size, Image.Transform.PERSPECTIVE, coeffs, resample, fillcolor=fill)
