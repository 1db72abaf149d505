"""Fast detector: dlib's frontal-face HOG + linear SVM."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dlib

from faceledger.detect.base import Detector, RawBox
from faceledger.types import Box, Pixels

_idle: list[dlib.fhog_object_detector] = []
_idle_lock = threading.Lock()


@contextmanager
def _borrowed() -> Iterator[dlib.fhog_object_detector]:
    """A detector no other thread is using, returned to the idle list afterwards.

    dlib's object detector keeps its feature pyramid in mutable scratch buffers, so two threads
    running one detector corrupt each other's boxes (seen with video frames detected on two
    threads); dlib releases the GIL while detecting, so a detector per concurrent call is what
    lets threads detect in parallel. Building one costs ~0.23 s with the GIL held (it
    deserialises the model), so detectors outlive the threads that used them: a video search
    that starts two detection threads used to spend 0.46 s of a 3-second clip building them."""
    with _idle_lock:
        hog = _idle.pop() if _idle else None
    if hog is None:
        hog = dlib.get_frontal_face_detector()
    try:
        yield hog
    finally:
        with _idle_lock:
            _idle.append(hog)


class HogDetector(Detector):
    name = "hog"

    @property
    def max_side(self) -> int:
        return self.settings.detect_max_side

    def _find(self, pixels: Pixels, upsample: int) -> list[RawBox]:
        with _borrowed() as hog:
            rects, scores, _ = hog.run(pixels, upsample, 0.0)
        return [
            RawBox(Box(r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]

    @staticmethod
    def confidence(raw_score: float) -> float:
        return 1.0 / (1.0 + math.exp(-3.0 * raw_score))
