"""Per-face quality measures computed from the pixels and the five landmarks.

All measures are taken on a face crop resampled to a fixed size so they compare across image
resolutions; the size itself is reported separately (inter-eye distance in source pixels).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from faceledger.config import QualityGates
from faceledger.types import Detection, Pixels, QualityReport

CROP_PX = 96
"""Side of the grey face crop the sharpness and exposure measures use."""


def _grey_crop(pixels: Pixels, det: Detection) -> npt.NDArray[np.float64]:
    h, w = pixels.shape[:2]
    b = det.box
    # the inner part of the box: skin and features, little background
    mx, my = b.width * 0.15, b.height * 0.15
    left, top = max(0, int(b.left + mx)), max(0, int(b.top + my))
    right, bottom = min(w, int(b.right - mx)), min(h, int(b.bottom - my))
    if right - left < 2 or bottom - top < 2:
        return np.zeros((CROP_PX, CROP_PX))
    crop = Image.fromarray(pixels[top:bottom, left:right]).convert("L")
    crop = crop.resize((CROP_PX, CROP_PX), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float64)


def _laplacian_variance(grey: npt.NDArray[np.float64]) -> float:
    lap = (
        -4.0 * grey[1:-1, 1:-1]
        + grey[:-2, 1:-1]
        + grey[2:, 1:-1]
        + grey[1:-1, :-2]
        + grey[1:-1, 2:]
    )
    return float(lap.var())


def _pose(det: Detection) -> tuple[float, float]:
    """(yaw, roll) in degrees estimated from the eye line and the nose position."""
    lm = det.landmarks
    le, re, nose = lm.eye_left, lm.eye_right, lm.nose
    dx, dy = re.x - le.x, re.y - le.y
    roll = math.degrees(math.atan2(dy, dx))
    ied = math.hypot(dx, dy)
    if ied < 1e-6:
        return 90.0, roll
    # nose offset from the eyes' midpoint along the eye line, as a fraction of eye distance
    mx, my = (le.x + re.x) / 2, (le.y + re.y) / 2
    along = ((nose.x - mx) * dx + (nose.y - my) * dy) / ied
    ratio = along / ied
    # on frontal faces the nose sits on the midline; at ~45° yaw it moves ~0.5 eye distances
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, ratio / 0.7))))
    return yaw, roll


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear between (works for either direction)."""
    if good == bad:
        return 1.0
    return max(0.0, min(1.0, (value - bad) / (good - bad)))


def assess_quality(pixels: Pixels, det: Detection, gates: QualityGates) -> QualityReport:
    grey = _grey_crop(pixels, det)
    sharp = _laplacian_variance(grey)
    brightness = float(grey.mean())
    contrast = float(grey.std())
    clipped = float(np.mean((grey <= 5) | (grey >= 250)))
    yaw, roll = _pose(det)
    ied = det.landmarks.inter_eye_distance

    parts = {
        "size": _ramp(ied, 10.0, 45.0),
        "sharpness": _ramp(math.log10(sharp + 1.0), 0.5, 2.0),
        "exposure": min(_ramp(brightness, 20.0, 70.0), _ramp(brightness, 245.0, 190.0)),
        "contrast": _ramp(contrast, 5.0, 30.0),
        "clipping": _ramp(clipped, 0.5, 0.05),
        "pose": _ramp(abs(yaw), 60.0, 10.0) * _ramp(abs(roll), 45.0, 10.0),
    }
    # geometric mean: one very poor aspect pulls the score down hard
    score = 100.0 * math.prod(max(p, 1e-3) for p in parts.values()) ** (1.0 / len(parts))
    score = round(score, 1) if score > 0.5 else 0.0

    flags: list[str] = []
    if ied < gates.min_inter_eye_px:
        flags.append("small_face")
    if sharp < gates.min_sharpness:
        flags.append("blurry")
    if abs(yaw) > gates.max_abs_yaw_deg:
        flags.append("yaw")
    if abs(roll) > gates.max_abs_roll_deg:
        flags.append("roll")
    if brightness < gates.min_brightness:
        flags.append("dark")
    if brightness > gates.max_brightness:
        flags.append("bright")
    if clipped > gates.max_clipped_fraction:
        flags.append("clipped")
    if score < gates.min_score:
        flags.append("low_score")

    return QualityReport(
        face_width_px=det.box.width,
        inter_eye_px=round(ied, 2),
        sharpness=round(sharp, 2),
        brightness=round(brightness, 2),
        contrast=round(contrast, 2),
        clipped_fraction=round(clipped, 4),
        yaw_deg=round(yaw, 1),
        roll_deg=round(roll, 1),
        score=score,
        flags=tuple(flags),
    )
