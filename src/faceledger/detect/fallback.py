"""A fast detector, with a slower one consulted only for images where it finds no face.

HOG misses faces that the CNN finds (turned heads, low contrast, and, on UTKFace, darker skin
more often than lighter: 5 of the 8 images HOG missed in the open-set protocols). Running the
CNN on every image costs seconds each; running it only where HOG found nothing costs that on a
few percent of images. The second detector makes one pass at the scale ``min_face_px`` asks
for (no finer retries: an image without any face would otherwise cost tens of seconds).
"""

from __future__ import annotations

from faceledger.config import Settings
from faceledger.detect.base import PROMINENT_MAX_SIDE, Detector, RawBox
from faceledger.types import Detection, Pixels


class FallbackDetector(Detector):
    FALLBACK_PIXEL_BUDGET = 400_000
    """Pixels (after upsampling) the fallback's one pass may scan: a 250 px portrait at 2x,
    a 640 px photo at 1x (faces of 80 px and up at that scale)."""

    def __init__(self, settings: Settings, primary: Detector, fallback: Detector) -> None:
        super().__init__(settings)
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"

    @property
    def max_side(self) -> int:
        return self.primary.max_side

    def _find(self, pixels: Pixels, upsample: int) -> list[RawBox]:
        return self.primary._find(pixels, upsample)

    def confidence(self, raw_score: float) -> float:  # type: ignore[override]
        return self.primary.confidence(raw_score)

    def detect(self, pixels: Pixels, *, finer: bool = True) -> list[Detection]:
        found = self.primary.detect(pixels, finer=finer)
        return found or self.fallback.detect(pixels, finer=False)

    def detect_prominent(
        self, pixels: Pixels, *, max_side: int = PROMINENT_MAX_SIDE
    ) -> list[Detection]:
        found = self.primary.detect_prominent(pixels, max_side=max_side)
        return found or self.fallback.detect(pixels, finer=False)
