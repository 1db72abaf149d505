"""Downscaling helpers shared by the stages that work on smaller copies of an image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from faceledger.types import Pixels


def shrink_to_max_side(pixels: Pixels, max_side: int) -> tuple[Pixels, float]:
    """Return a copy no larger than ``max_side`` on its longer side and the scale applied.

    The scale maps original coordinates to the copy (``copy = original * scale``).
    """
    h, w = pixels.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return pixels, 1.0
    scale = max_side / longest
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(small, dtype=np.uint8)), scale
