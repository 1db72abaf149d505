"""Fast detector: dlib's frontal-face HOG + linear SVM."""

from __future__ import annotations

import math
import threading

import dlib

from faceledger.detect.base import Detector, RawBox
from faceledger.types import Box, Pixels

_local = threading.local()


def _get() -> dlib.fhog_object_detector:
    """This thread's detector: dlib's object detector keeps its feature pyramid in mutable
    scratch buffers, so two threads running one detector corrupt each other's boxes (seen
    with video frames detected on two threads). dlib releases the GIL while detecting, so a
    detector per thread is what lets threads detect in parallel."""
    hog: dlib.fhog_object_detector | None = getattr(_local, "hog", None)
    if hog is None:
        hog = _local.hog = dlib.get_frontal_face_detector()
    return hog


class HogDetector(Detector):
    name = "hog"

    @property
    def max_side(self) -> int:
        return self.settings.detect_max_side

    def _find(self, pixels: Pixels, upsample: int) -> list[RawBox]:
        rects, scores, _ = _get().run(pixels, upsample, 0.0)
        return [
            RawBox(Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]

    @staticmethod
    def confidence(raw_score: float) -> float:
        return 1.0 / (1.0 + math.exp(-3.0 * raw_score))
