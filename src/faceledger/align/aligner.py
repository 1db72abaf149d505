"""Warp a face so its five landmarks land on a model's reference points.

The transform is the least-squares similarity (rotation, uniform scale, translation) from the
landmarks to the model card's reference points; dlib's chip extractor does the resampling
(bilinear, with a pyramid when shrinking a lot, which avoids aliasing on large faces).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

from faceledger.models.card import AlignSpec
from faceledger.types import AlignedFace, Detection, Pixels


def _chip_details(spec: AlignSpec, points: Iterable[tuple[float, float]]) -> Any:
    """dlib's chip of ``spec`` for landmarks ``points`` (image pixels)."""
    return dlib.chip_details(
        dlib.dpoints([dlib.dpoint(x, y) for x, y in spec.reference]),
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in points]),
        dlib.chip_dims(spec.size, spec.size),
    )


def align_face(pixels: Pixels, det: Detection, spec: AlignSpec) -> AlignedFace:
    details = _chip_details(spec, ((p.x, p.y) for p in det.landmarks.points))
    chip = dlib.extract_image_chip(pixels, details)
    return AlignedFace(chip=np.ascontiguousarray(chip, dtype=np.uint8), detection=det)


def mirror(face: AlignedFace) -> AlignedFace:
    """The horizontally flipped chip (for flip-averaged templates)."""
    return AlignedFace(chip=np.ascontiguousarray(face.chip[:, ::-1]), detection=face.detection)


def chip_mapping(spec: AlignSpec, landmarks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 2×3 affine map from image to chip pixels of the chip :func:`align_face` cuts for
    ``landmarks`` (n×2): dlib's ``get_mapping_to_chip`` of the same ``chip_details``, the
    rotated box's top-left, top-right and bottom-right corners going to the chip's."""
    details = _chip_details(spec, ((float(x), float(y)) for x, y in landmarks))
    rect = details.rect
    cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
    cos, sin = math.cos(details.angle), math.sin(details.angle)
    corners = ((rect.left(), rect.top()), (rect.right(), rect.top()), (rect.right(), rect.bottom()))
    source = [
        (cos * (x - cx) - sin * (y - cy) + cx, sin * (x - cx) + cos * (y - cy) + cy)
        for x, y in corners
    ]
    last_col, last_row = details.cols - 1, details.rows - 1
    target = np.array([[0.0, 0.0], [last_col, 0.0], [last_col, last_row]])
    a = np.array([[x, y, 1.0] for x, y in source])
    return np.asarray(np.linalg.solve(a, target).T, dtype=np.float64)
