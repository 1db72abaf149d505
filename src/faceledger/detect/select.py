"""Pick the one face a single-face operation works on, by an explicit policy.

``primary`` (the default) looks for the photo's subject: the face that is both large and near
the centre, with a little weight on the detector's confidence. ``largest`` alone picks a
bystander who is nearer the camera than the subject (a crop centred on one person with a
larger, half-visible head at its edge); ``central`` alone picks a small background face that
happens to sit in the middle of a portrait composed off-centre. How often each policy picks
the labelled subject on multi-face photos is measured by ``benchmarks/face_selection.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from faceledger.config import FaceSelection
from faceledger.errors import AmbiguousFace, InvalidArgument, NoFace
from faceledger.types import Detection

CENTRE_SCALE = 0.4
"""``primary``: a face this far from the centre (as a fraction of half the image's diagonal)
must be e (2.7) times larger, in box side, to win over a face at the centre."""

CONFIDENCE_FLOOR = 0.5
"""``primary``: weight of a detection of confidence 0 against one of confidence 1."""


def primary_score(d: Detection, largest_side: float, width: int, height: int) -> float:
    """Log-score of ``d`` being the photo's subject (higher is more likely)."""
    side = math.sqrt(d.box.area)
    size = math.log(side / largest_side) if side > 0 and largest_side > 0 else -math.inf
    half_diagonal = 0.5 * math.hypot(width, height) or 1.0
    offset = math.hypot(d.box.center.x - width / 2, d.box.center.y - height / 2) / half_diagonal
    confidence = math.log(CONFIDENCE_FLOOR + (1 - CONFIDENCE_FLOOR) * min(max(d.confidence, 0), 1))
    return size - (offset / CENTRE_SCALE) ** 2 + confidence


def select_face(
    detections: Sequence[Detection], policy: FaceSelection, width: int, height: int
) -> Detection:
    """``primary`` subject, ``largest`` box, most ``central`` box, or ``only`` (error if
    there are several)."""
    if not detections:
        raise NoFace("no face found in the image")
    if policy == "only":
        if len(detections) > 1:
            raise AmbiguousFace(
                f"{len(detections)} faces found; choose one with face selection "
                "'primary', 'largest' or 'central'"
            )
        return detections[0]
    if policy == "primary":
        largest = max(math.sqrt(d.box.area) for d in detections)
        return max(detections, key=lambda d: primary_score(d, largest, width, height))
    if policy == "largest":
        return max(detections, key=lambda d: d.box.area)
    if policy == "central":
        cx, cy = width / 2, height / 2
        return min(detections, key=lambda d: math.hypot(d.box.center.x - cx, d.box.center.y - cy))
    raise InvalidArgument(f"unknown face selection {policy!r}")
