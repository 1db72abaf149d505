"""Accurate detector: dlib's MMOD CNN. Slow on one core, so it runs on a small copy."""

from __future__ import annotations

import math
import threading

import dlib

from faceledger.detect.base import Detector, RawBox
from faceledger.detect.files import MMOD_DETECTOR
from faceledger.types import Box, Pixels

_lock = threading.Lock()
_cnn: dlib.cnn_face_detection_model_v1 | None = None


def _get() -> dlib.cnn_face_detection_model_v1:
    global _cnn
    with _lock:
        if _cnn is None:
            _cnn = dlib.cnn_face_detection_model_v1(str(MMOD_DETECTOR.verified_path()))
        return _cnn


class CnnDetector(Detector):
    name = "cnn"
    default_pixel_budget = 1_200_000

    @property
    def max_side(self) -> int:
        return self.settings.cnn_max_side

    def _find(self, pixels: Pixels, upsample: int) -> list[RawBox]:
        found = _get()(pixels, upsample)
        return [
            RawBox(
                Box(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1),
                float(d.confidence),
            )
            for d in found
        ]

    @staticmethod
    def confidence(raw_score: float) -> float:
        return 1.0 / (1.0 + math.exp(-4.0 * raw_score))
