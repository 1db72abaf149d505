"""FPIR measured on the gallery itself: each sampled member searched against everyone else.

A model card's open-set calibration was measured on other people's photos; a gallery of
passport scans, mug shots or web images has its own impostor score distribution, and a
threshold carried over from the card can declare FPIR 0.01 and deliver several times that.
The gallery holds the best data there is about its own population: searching a member (whose
subject is left out) against the rest of the gallery is a non-mated search of a gallery of
``n - 1`` templates. Over a sample of members, the share whose best score reaches ``t`` *is*
the FPIR of threshold ``t``, counted rather than modelled.

This module holds the statistics (no storage, no search): the sorted best non-mated scores of
the sampled searches, the gallery size they were measured at, and the rules turning them into
a threshold or a candidate's FPIR. ``faceledger.gallery.selfcal`` runs the searches. A gallery
too small to count enough false positives for a target (fewer than :data:`MIN_EVENTS`) falls
back to the model card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument

MIN_EVENTS = 25
"""False positives the sample must be expected to hold at a target FPIR before the gallery's own
count sets the threshold (25 events: about ±20% relative error on the declared rate)."""

MAX_SAMPLES = 5000
"""Members searched at most: enough for FPIR 0.005 from the gallery's own count."""

FloatArray = npt.NDArray[np.float64]


def rescaled_fpir(fpir: float, templates: int, measured_at: int) -> float:
    """The FPIR at ``measured_at`` templates equivalent to ``fpir`` at ``templates``: impostor
    comparisons are treated as independent, so 1 - FPIR scales as a power of the size."""
    if not 0.0 < fpir < 1.0:
        raise InvalidArgument(f"target FPIR must be in (0, 1), got {fpir}")
    ratio = max(1, measured_at) / max(1, templates)
    return float(-math.expm1(ratio * math.log1p(-fpir)))


@dataclass(frozen=True, eq=False)
class GalleryCalibration:
    """Best non-mated scores of ``len(top_scores)`` leave-one-subject-out searches of a gallery
    of ``templates`` templates, sorted high to low, on the scores a search ranks by."""

    top_scores: FloatArray
    templates: int
    normalisation: str

    def __post_init__(self) -> None:
        s = np.asarray(self.top_scores, dtype=np.float64)
        if s.ndim != 1 or s.size == 0 or not np.isfinite(s).all():
            raise InvalidArgument("a gallery calibration needs finite best scores")
        object.__setattr__(self, "top_scores", np.sort(s)[::-1].copy())

    @property
    def searches(self) -> int:
        return int(self.top_scores.shape[0])

    def expected_events(self, fpir: float, templates: int) -> float:
        """False positives the sample holds at ``fpir`` over ``templates`` templates."""
        return self.searches * rescaled_fpir(fpir, templates, self.templates)

    def supports(self, fpir: float, templates: int) -> bool:
        return self.expected_events(fpir, templates) >= MIN_EVENTS

    def threshold_for(self, fpir: float, templates: int) -> float:
        """Threshold whose counted FPIR over the sample is at most ``fpir`` (rescaled to this
        size): midway between the m-th and (m+1)-th best scores, m = floor(FPIR · searches)."""
        if not self.supports(fpir, templates):
            raise InvalidArgument(
                f"{self.searches} gallery searches cannot count FPIR {fpir:g} "
                f"(fewer than {MIN_EVENTS} expected false positives)"
            )
        m = math.floor(rescaled_fpir(fpir, templates, self.templates) * self.searches)
        m = min(max(m, 1), self.searches - 1)
        return float((self.top_scores[m - 1] + self.top_scores[m]) / 2)

    def fpir_at(self, score: float, templates: int) -> tuple[float, bool]:
        """FPIR of a threshold at ``score`` over ``templates`` templates, and whether it is an
        upper bound (no sampled search reached the score: the rate is below 1 / searches)."""
        hits = int(np.count_nonzero(self.top_scores >= score))
        upper = hits == 0
        measured = max(hits, 1) / self.searches
        if measured >= 1.0:
            return 1.0, False
        ratio = max(1, templates) / max(1, self.templates)
        return float(-math.expm1(ratio * math.log1p(-measured))), upper
