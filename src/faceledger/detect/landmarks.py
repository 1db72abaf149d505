"""Five-point landmarks from dlib's shape predictor, run on full-resolution pixels."""

from __future__ import annotations

import threading

import dlib

from faceledger.detect.files import LANDMARKS_5
from faceledger.types import Box, Landmarks, Pixels, Point

_lock = threading.Lock()
_predictor: dlib.shape_predictor | None = None


def _get_predictor() -> dlib.shape_predictor:
    global _predictor
    with _lock:
        if _predictor is None:
            _predictor = dlib.shape_predictor(str(LANDMARKS_5.verified_path()))
        return _predictor


def to_dlib_rect(box: Box) -> dlib.rectangle:
    return dlib.rectangle(
        round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1
    )


def predict_landmarks(pixels: Pixels, box: Box) -> Landmarks:
    shape = _get_predictor()(pixels, to_dlib_rect(box))
    pts = tuple(Point(float(shape.part(i).x), float(shape.part(i).y)) for i in range(5))
    return Landmarks(pts)  # type: ignore[arg-type]
