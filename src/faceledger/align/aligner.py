"""Warp a face so its five landmarks land on a model's reference points.

The transform is the least-squares similarity (rotation, uniform scale, translation) from the
landmarks to the model card's reference points; dlib's chip extractor does the resampling
(bilinear, with a pyramid when shrinking a lot, which avoids aliasing on large faces).
"""

from __future__ import annotations

import dlib
import numpy as np

from faceledger.models.card import AlignSpec
from faceledger.types import AlignedFace, Detection, Pixels


def align_face(pixels: Pixels, det: Detection, spec: AlignSpec) -> AlignedFace:
    chip_points = dlib.dpoints([dlib.dpoint(x, y) for x, y in spec.reference])
    img_points = dlib.dpoints([dlib.dpoint(p.x, p.y) for p in det.landmarks.points])
    details = dlib.chip_details(chip_points, img_points, dlib.chip_dims(spec.size, spec.size))
    chip = dlib.extract_image_chip(pixels, details)
    return AlignedFace(chip=np.ascontiguousarray(chip, dtype=np.uint8), detection=det)


def mirror(face: AlignedFace) -> AlignedFace:
    """The horizontally flipped chip (for flip-averaged templates)."""
    return AlignedFace(chip=np.ascontiguousarray(face.chip[:, ::-1]), detection=face.detection)
