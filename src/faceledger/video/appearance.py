"""A cheap appearance descriptor of a detected face, for telling neighbouring tracks apart.

It is NOT a face template: the tracker uses it only to keep two people who pass close to each
other on their own tracks between sampled frames. Three parts, each unit length before weighting:
a grey thumbnail of the face box (mean-subtracted, so it carries layout rather than brightness),
a coarse colour histogram of the box (hair, skin) and one of a band below it (clothing). The
cosine of two descriptors is the weighted mean of the parts' cosines; the thumbnail counts half,
since colour histograms of different people are alike more often (skin, dark clothes). On
video_01's faces a person against himself 1/3 s later scored 0.73 or more, two different people
0.53 at most (0.36 on average). Costs about 0.2 ms per face.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.types import Box, Pixels

_WEIGHTS = (2.0, 1.0, 1.0)
"""Weights of the thumbnail, face-colour and clothing parts in the cosine."""

_LEVELS = 4
"""Quantisation levels per RGB channel in the histograms (4 x 4 x 4 = 64 bins)."""

_HIST_SIDE = 16
"""Regions are shrunk to at most this many pixels a side before their histogram is counted."""

_BAND_HEIGHT = 1.0
_BAND_WIDEN = 0.25
"""The clothing band: one box height tall, starting at the box's bottom, and widened by a
quarter of the box width on each side."""


def descriptor(pixels: Pixels, box: Box, size: int = 16) -> npt.NDArray[np.float32]:
    """An L2-normalised vector of ``size * size + 128`` floats describing the look of ``box``.

    A box that, with the band below it, lies wholly outside the image gives the zero vector
    (the tracker treats it as missing).
    """
    face = _crop(pixels, box)
    band = _crop(pixels, _band(box))
    parts = (_thumbnail(face, size), _histogram(face), _histogram(band))
    joined = _unit(np.concatenate([np.sqrt(w) * p for w, p in zip(_WEIGHTS, parts, strict=True)]))
    return joined.astype(np.float32)


def _band(box: Box) -> Box:
    widen = _BAND_WIDEN * box.width
    return Box(
        box.left - widen, box.bottom, box.right + widen, box.bottom + _BAND_HEIGHT * box.height
    )


def _crop(pixels: Pixels, box: Box) -> Pixels:
    """The part of ``box`` inside the image (possibly empty)."""
    h, w = pixels.shape[:2]
    left, right = max(0, round(box.left)), min(w, round(box.right))
    top, bottom = max(0, round(box.top)), min(h, round(box.bottom))
    return pixels[top:bottom, left:right] if right > left and bottom > top else pixels[:0, :0]


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _thumbnail(region: Pixels, size: int) -> npt.NDArray[np.float64]:
    if region.size == 0:
        return np.zeros(size * size)
    grey = Image.fromarray(np.ascontiguousarray(region)).convert("L")
    thumb = np.asarray(grey.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    return _unit(thumb.ravel() - thumb.mean())


def _histogram(region: Pixels) -> npt.NDArray[np.float64]:
    """Square roots of the normalised 64-bin RGB histogram (their dot product is the
    Bhattacharyya coefficient), counted on a shrunken copy so big boxes cost no more."""
    bins = _LEVELS**3
    if region.size == 0:
        return np.zeros(bins)
    h, w = region.shape[:2]
    if max(h, w) > _HIST_SIDE:
        scale = _HIST_SIDE / max(h, w)
        shape = (max(1, round(w * scale)), max(1, round(h * scale)))
        region = np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize(shape))
    q = region.reshape(-1, 3).astype(np.intp) * _LEVELS // 256
    counts = np.bincount((q[:, 0] * _LEVELS + q[:, 1]) * _LEVELS + q[:, 2], minlength=bins)
    return _unit(np.sqrt(counts.astype(np.float64)))
