"""Frozen values passed between the stages: image → detect → quality → align → embed → match.

Nothing here does work beyond small geometry helpers; each stage module owns its logic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from faceledger.errors import ModelMismatch

Pixels = npt.NDArray[np.uint8]
"""An RGB image, shape (height, width, 3), dtype uint8, C-contiguous."""

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in image pixels; right/bottom are exclusive."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return max(0.0, self.right - self.left)

    @property
    def height(self) -> float:
        return max(0.0, self.bottom - self.top)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> Point:
        return Point((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def scaled(self, factor: float) -> Box:
        return Box(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def iou(self, other: Box) -> float:
        inter = Box(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        ).area
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Landmarks:
    """Five facial landmarks in dlib's 5-point scheme, image pixels.

    Order: 0 outer and 1 inner corner of the eye on the image's right side, 2 outer and
    3 inner corner of the eye on the image's left side, 4 just under the nose.
    """

    points: tuple[Point, Point, Point, Point, Point]

    @property
    def eye_right(self) -> Point:
        a, b = self.points[0], self.points[1]
        return Point((a.x + b.x) / 2, (a.y + b.y) / 2)

    @property
    def eye_left(self) -> Point:
        a, b = self.points[2], self.points[3]
        return Point((a.x + b.x) / 2, (a.y + b.y) / 2)

    @property
    def nose(self) -> Point:
        return self.points[4]

    @property
    def inter_eye_distance(self) -> float:
        le, re = self.eye_left, self.eye_right
        return math.hypot(re.x - le.x, re.y - le.y)

    def scaled(self, factor: float) -> Landmarks:
        p = tuple(Point(q.x * factor, q.y * factor) for q in self.points)
        return Landmarks(p)  # type: ignore[arg-type]

    def as_array(self) -> npt.NDArray[np.float64]:
        return np.array([[p.x, p.y] for p in self.points], dtype=np.float64)


@dataclass(frozen=True)
class DecodedImage:
    """Decoded, EXIF-rotated RGB pixels plus provenance."""

    pixels: Pixels = field(repr=False)
    sha256: str
    format: str
    source: str = "<bytes>"

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class Detection:
    """One face found in an image."""

    box: Box
    landmarks: Landmarks
    confidence: float
    """Detector score mapped to 0..1 (monotone in the backend's raw score)."""
    raw_score: float
    detector: str


@dataclass(frozen=True)
class QualityReport:
    """Per-face quality measures and the combined 0–100 score."""

    face_width_px: float
    inter_eye_px: float
    sharpness: float
    """Variance of the Laplacian of the aligned grey face, larger is sharper."""
    brightness: float
    """Mean grey level of the face region, 0–255."""
    contrast: float
    """Standard deviation of grey levels of the face region."""
    clipped_fraction: float
    """Fraction of face pixels at 0–5 or 250–255 (under/over exposure)."""
    yaw_deg: float
    roll_deg: float
    score: float
    """Combined 0–100 score (higher is better)."""
    flags: tuple[str, ...] = ()
    """Names of the gates this face fails (empty when it passes)."""

    @property
    def passes(self) -> bool:
        return not self.flags


@dataclass(frozen=True)
class AlignedFace:
    """A face cropped, rotated and scaled to a model's input geometry."""

    chip: Pixels = field(repr=False)
    detection: Detection


@dataclass(frozen=True, eq=False)
class Template:
    """An L2-normalised face embedding tagged with the model that made it."""

    model_id: str
    vector: Vector = field(repr=False)

    def __post_init__(self) -> None:
        if self.vector.ndim != 1:
            raise ValueError("template vector must be one-dimensional")

    @property
    def dimension(self) -> int:
        return int(self.vector.shape[0])

    def similarity(self, other: Template) -> float:
        """Cosine similarity; refuses templates of different models."""
        if other.model_id != self.model_id:
            raise ModelMismatch(
                f"cannot compare a template of model {self.model_id!r} "
                f"with one of model {other.model_id!r}"
            )
        if other.dimension != self.dimension:
            raise ModelMismatch("templates have different dimensions")
        return float(np.dot(self.vector, other.vector))

    def to_bytes(self) -> bytes:
        return self.vector.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, model_id: str, data: bytes) -> Template:
        return cls(model_id, np.frombuffer(data, dtype="<f4").astype(np.float32))


@dataclass(frozen=True)
class FaceResult:
    """Everything the engine knows about one face of one image."""

    detection: Detection
    quality: QualityReport
    template: Template | None = None
    face_index: int = 0
    """Position of this face among the image's detections (detector order, from 0)."""
    faces_in_image: int = 1
    """How many faces the detector found in the image."""
    selection: str | None = None
    """The policy that picked this face for a one-face operation (``primary``, ``largest``,
    ``central``, ``only``); None when every face of the image was used."""

    @property
    def others(self) -> int:
        """Faces of the image that a one-face operation did not use."""
        return self.faces_in_image - 1 if self.selection is not None else 0


class Outcome(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"


@dataclass(frozen=True)
class FMREstimate:
    """Estimated false-match rate of a score, from the model's calibration table.

    ``upper_bound`` is True when the score is beyond the highest impostor score measured, so
    the true rate is only known to be below ``value`` (which is then 1 / number of pairs).
    """

    value: float
    upper_bound: bool
    impostor_pairs: int


@dataclass(frozen=True)
class Decision:
    """A 1:1 decision at a threshold chosen by target false-match rate."""

    score: float
    fmr: FMREstimate
    target_fmr: float
    threshold: float
    outcome: Outcome
    model_id: str
    group_fmr: tuple[tuple[str, float], ...] = ()
    """Measured false-match rate at ``threshold`` within each calibrated group (the
    threshold is one number; groups' impostors do not score alike)."""
