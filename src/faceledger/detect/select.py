"""Pick the one face a single-face operation works on, by an explicit policy."""

from __future__ import annotations

import math
from collections.abc import Sequence

from faceledger.config import FaceSelection
from faceledger.errors import AmbiguousFace, InvalidArgument, NoFace
from faceledger.types import Detection


def select_face(
    detections: Sequence[Detection], policy: FaceSelection, width: int, height: int
) -> Detection:
    """``largest`` box, most ``central`` box, or ``only`` (error if there are several)."""
    if not detections:
        raise NoFace("no face found in the image")
    if policy == "only":
        if len(detections) > 1:
            raise AmbiguousFace(
                f"{len(detections)} faces found; choose one with face selection "
                "'largest' or 'central'"
            )
        return detections[0]
    if policy == "largest":
        return max(detections, key=lambda d: d.box.area)
    if policy == "central":
        cx, cy = width / 2, height / 2
        return min(detections, key=lambda d: math.hypot(d.box.center.x - cx, d.box.center.y - cy))
    raise InvalidArgument(f"unknown face selection {policy!r}")
