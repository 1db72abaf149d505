"""The document's portrait: found, assessed and embedded like any probe face, and flagged when
it is too small to compare reliably.

A passport data page or an ID card carries one portrait, often a second, smaller and fainter
"ghost" copy of it, and no other face: the portrait is the largest face on the document. It
is printed at 35×45 mm on a passport (ICAO 9303) and about 22×28 mm on an ID card, so a photo
of the document held up to a phone gives a face of 60–150 px between the temples, and fewer
pixels between the eyes than any enrolment gate would accept. Such a portrait is still
compared (it is what the officer has), but its report says that its size raises the false
non-match rate, and the document check's decision names ``low_quality``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceledger.errors import NoFace
from faceledger.pipeline import Engine
from faceledger.types import Box, DecodedImage, FaceResult

SMALL_INTER_EYE_PX = 60.0
"""Below this distance between the eye centres (the ISO/IEC 19794-5 minimum for a token
frontal image) a portrait is reported as small: expect more false non-matches."""

SMALL_NOTE = (
    "the document portrait is small ({eyes:.0f} px between the eyes, under {limit:.0f}): "
    "document portraits raise the false non-match rate; a no-match is weak evidence"
)


@dataclass(frozen=True)
class Portrait:
    """The document's portrait face (with its template) and what else was on the document."""

    face: FaceResult
    """Found on the document turned upright (its detection's box is in that frame)."""
    faces_on_document: int
    box: Box
    """Where the portrait is in the image as given."""
    quarter_turns: int = 0
    """Clockwise quarter turns that made the document upright before detection."""

    @property
    def small(self) -> bool:
        return self.face.quality.inter_eye_px < SMALL_INTER_EYE_PX

    @property
    def notes(self) -> tuple[str, ...]:
        if not self.small:
            return ()
        return (SMALL_NOTE.format(eyes=self.face.quality.inter_eye_px, limit=SMALL_INTER_EYE_PX),)

    def as_json(self) -> dict[str, Any]:
        q = self.face.quality
        b = self.box
        return {
            "box": {"left": b.left, "top": b.top, "right": b.right, "bottom": b.bottom},
            "faces_on_document": self.faces_on_document,
            "quality": {
                "score": round(q.score, 1),
                "passes": q.passes,
                "flags": list(q.flags),
                "inter_eye_px": round(q.inter_eye_px, 1),
                "face_width_px": round(q.face_width_px, 1),
            },
            "small": self.small,
            "notes": list(self.notes),
        }


def find_portrait(
    engine: Engine,
    image: DecodedImage,
    *,
    exclude: Box | None = None,
    text_angle: float = 0.0,
) -> Portrait | None:
    """The largest face on ``image`` outside ``exclude`` (the MRZ zone), embedded; None when
    the document shows no face.

    ``text_angle`` is the MRZ's direction (degrees counter-clockwise from the x axis, as the
    reader reports it): a document photographed sideways or upside down is turned upright by
    quarter turns first, because the face detector finds upright faces only."""
    turns = round(text_angle / 90.0) % 4
    upright = image
    if turns:
        pixels = np.ascontiguousarray(np.rot90(image.pixels, k=-turns))
        upright = dataclasses.replace(image, pixels=pixels)
        exclude = None  # in the other frame; the zone holds no face anyway
    # through the engine, not its detector: the service's engine serialises model calls
    found = [f.detection for f in engine.detect(upright)]
    if exclude is not None:
        found = [d for d in found if _overlap(d.box, exclude) < 0.5]
    if not found:
        return None
    try:
        face = engine.embed_detected(upright, found, selection="largest")
    except NoFace:
        return None
    box = _unturned(face.detection.box, turns, image.width, image.height)
    return Portrait(face, len(found), box, turns)


def _unturned(box: Box, turns: int, width: int, height: int) -> Box:
    """``box`` found after ``turns`` clockwise quarter turns, in the original image."""
    corners = [(box.left, box.top), (box.right, box.bottom)]
    for k in range(turns, 0, -1):
        # undo turn k: (x, y) -> (y, h - x), h the height of the frame before it (the
        # original's after an even number of turns, its width after an odd one)
        h = height if (k - 1) % 2 == 0 else width
        corners = [(y, h - x) for x, y in corners]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return Box(min(xs), min(ys), max(xs), max(ys))


def _overlap(a: Box, b: Box) -> float:
    """Share of ``a``'s area inside ``b``."""
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    area = max(1e-9, (a.right - a.left) * (a.bottom - a.top))
    return w * h / area
