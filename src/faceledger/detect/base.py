"""The Detector protocol and the shared scale handling every backend uses.

Backends find boxes on a working copy of the image (downscaled when large, upsampled when
faces may be small); boxes are mapped back to the original pixels and landmarks are
predicted there, so downstream stages never see the working scale.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

from faceledger.config import Settings
from faceledger.detect.landmarks import predict_landmarks
from faceledger.errors import InvalidArgument
from faceledger.io.resize import shrink_to_max_side
from faceledger.types import Box, Detection, Pixels

HOG_WINDOW_PX = 80
"""dlib's frontal HOG and MMOD detectors both scan an ~80 px window."""

PROMINENT_MAX_SIDE = 320
"""Working size of :meth:`Detector.detect_prominent`'s first pass: finds faces of at least
about a quarter of the image's longer side (80 px window at this scale)."""

FALLBACK_PIXEL_BUDGET = 400_000
"""Pixels (after upsampling) the ``hog+cnn`` fallback's one CNN pass may scan: a 250 px
portrait at 2x, a 640 px photo at 1x (faces of 80 px and up at that scale).

HOG misses faces that the CNN finds (turned heads, low contrast and, on UTKFace, darker skin
more often than lighter: 5 of the 8 images HOG missed in the open-set protocols). Running the
CNN on every image costs seconds each; running it only where HOG found nothing costs that on a
few percent of images. The fallback makes one pass at the scale ``min_face_px`` asks for, or
coarser where that would exceed this budget, and no finer retries: an image without any face
(a wrong file, a photo of a car) then costs a few seconds, not the tens of seconds a full CNN
search would."""


@dataclass(frozen=True)
class RawBox:
    box: Box
    score: float


class Detector(ABC):
    """Finds every face in an RGB image."""

    name: str
    default_pixel_budget = 6_000_000

    def __init__(
        self,
        settings: Settings,
        *,
        pixel_budget: int | None = None,
        fallback: Detector | None = None,
    ) -> None:
        self.settings = settings
        self._pixel_budget = pixel_budget
        self.fallback = fallback
        """Consulted, in one pass without finer retries, for images where this finds none."""

    @property
    @abstractmethod
    def max_side(self) -> int:
        """Longest side of the working copy the backend runs on."""

    @property
    def pixel_budget(self) -> int:
        """Most pixels (after upsampling) one detection pass may scan."""
        return self._pixel_budget or self.default_pixel_budget

    @abstractmethod
    def _find(self, pixels: Pixels, upsample: int) -> list[RawBox]:
        """Boxes on ``pixels`` (already at working scale), in its coordinates."""

    @staticmethod
    @abstractmethod
    def confidence(raw_score: float) -> float:
        """Map the backend's raw score to 0..1 (monotone; not a probability)."""

    def upsample_for(self, height: int, width: int) -> int:
        wanted = max(0, math.ceil(math.log2(HOG_WINDOW_PX / max(1, self.settings.min_face_px))))
        u = min(wanted, self.settings.max_upsample)
        while u > 0 and height * width * 4**u > self.pixel_budget:
            u -= 1
        return u

    def detect(self, pixels: Pixels, *, finer: bool = True) -> list[Detection]:
        """Every face, at the scale ``min_face_px`` asks for; when none is found and ``finer``,
        again at finer scales (up to ``max_upsample``) while the pixel budget allows; when
        still none, the ``fallback`` detector's."""
        work, scale = shrink_to_max_side(pixels, self.max_side)
        h, w = work.shape[:2]
        upsample = self.upsample_for(h, w)
        raw = self._find(work, upsample)
        # Nothing found: faces may be smaller than expected; try finer scales while cheap.
        while finer and not raw and upsample < self.settings.max_upsample:
            upsample += 1
            if h * w * 4**upsample > self.pixel_budget:
                break
            raw = self._find(work, upsample)
        if not raw and self.fallback is not None:
            return self.fallback.detect(pixels, finer=False)
        return self._to_detections(pixels, raw, scale)

    def detect_prominent(
        self, pixels: Pixels, *, max_side: int = PROMINENT_MAX_SIDE
    ) -> list[Detection]:
        """Faces found on a copy at most ``max_side`` px, without upsampling; the full search
        (:meth:`detect`) only when that finds none.

        For single-face enrolment with the ``largest`` selection: the largest face is found at
        a fraction of the cost (no upsampled pass over the full image), but faces smaller than
        about a quarter of the image's longer side may be left out when a larger one is found.
        """
        work, scale = shrink_to_max_side(pixels, min(max_side, self.max_side))
        raw = self._find(work, 0)
        if not raw:
            return self.detect(pixels)
        return self._to_detections(pixels, raw, scale)

    def _to_detections(self, pixels: Pixels, raw: list[RawBox], scale: float) -> list[Detection]:
        """Map working-scale boxes back to ``pixels`` and predict landmarks there."""
        full_h, full_w = pixels.shape[:2]
        out: list[Detection] = []
        for r in raw:
            b = r.box.scaled(1.0 / scale)
            b = Box(max(0.0, b.left), max(0.0, b.top), min(full_w, b.right), min(full_h, b.bottom))
            if b.area <= 0:
                continue
            out.append(
                Detection(
                    box=b,
                    landmarks=predict_landmarks(pixels, b),
                    confidence=self.confidence(r.score),
                    raw_score=r.score,
                    detector=self.name,
                )
            )
        out.sort(key=lambda d: d.box.area, reverse=True)
        return out


def make_detector(settings: Settings, name: str | None = None) -> Detector:
    from faceledger.detect.dlib_cnn import CnnDetector
    from faceledger.detect.dlib_hog import HogDetector

    chosen = name or settings.detector
    if chosen == "hog":
        return HogDetector(settings)
    if chosen == "cnn":
        return CnnDetector(settings)
    if chosen == "hog+cnn":
        cnn = CnnDetector(settings, pixel_budget=FALLBACK_PIXEL_BUDGET)
        return HogDetector(settings, fallback=cnn)
    raise InvalidArgument(f"unknown detector {chosen!r}; choose 'hog', 'cnn' or 'hog+cnn'")
