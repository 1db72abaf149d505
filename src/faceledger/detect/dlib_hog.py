"""Fast detector: dlib's frontal-face HOG + linear SVM."""

from __future__ import annotations

import math
import threading

import dlib

from faceledger.detect.base import Detector, RawBox
from faceledger.types import Box, Pixels

_lock = threading.Lock()
_hog: dlib.fhog_object_detector | None = None


def _get() -> dlib.fhog_object_detector:
    global _hog
    with _lock:
        if _hog is None:
            _hog = dlib.get_frontal_face_detector()
        return _hog


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
