"""The 1:N decision as pure functions: a target FPIR → a threshold over a gallery of a given
size, and ranked subject scores → a candidate list with each candidate's estimated FMR and
FPIR.

Nothing here reads a store, an index or a workspace: the search use case
(``faceledger.usecases.search``) ranks the galleries and hands the scores in; ``eval identify``
and the benchmarks call the same functions to declare the thresholds they measure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from faceledger.errors import CalibrationError, InvalidArgument
from faceledger.match.gallery_calibration import GalleryCalibration
from faceledger.match.verify import require_calibration
from faceledger.models.calibration import CalibrationTable, OpenSetCalibration
from faceledger.models.card import ModelCard
from faceledger.types import FaceResult, FMREstimate

ThresholdSource = Literal["gallery", "model card"]


class ScoreRates(Protocol):
    """What turns a score into its estimated per-comparison false-match rate (the card's 1:1
    table for cosine scores, its open-set calibration for normalised ones)."""

    def fmr_at(self, score: float) -> FMREstimate: ...


def normalisation_for(card: ModelCard, mode: str, templates: int) -> OpenSetCalibration | None:
    """The open-set calibration a search of ``templates`` templates normalises with, or None
    (normalisation off, no calibration on the card, or fewer templates than its cohort)."""
    cal = card.openset
    if mode == "none" or cal is None or templates < cal.cohort_size:
        return None
    return cal


def comparison_fmr_for(fpir: float, comparisons: int) -> float:
    """Per-comparison FMR at which ``comparisons`` independent impostor comparisons give
    ``fpir`` (chance that at least one passes): 1 - (1 - fpir)^(1/n)."""
    if not 0.0 < fpir < 1.0:
        raise InvalidArgument(f"target FPIR must be in (0, 1), got {fpir}")
    n = max(1, comparisons)
    return float(-np.expm1(np.log1p(-fpir) / n))


def threshold_for_fpir(
    table: CalibrationTable, fpir: float, comparisons: int
) -> tuple[float, float]:
    """Threshold on cosine scores and per-comparison FMR giving ``fpir`` over
    ``comparisons`` templates, from the card's 1:1 table."""
    fmr = comparison_fmr_for(fpir, comparisons)
    if fmr < table.min_fmr:
        raise CalibrationError(
            f"a search of {comparisons:,} templates at FPIR {fpir:g} needs a per-comparison "
            f"false-match rate of {fmr:.2g}, below what the calibration measured "
            f"({table.min_fmr:.2g}); raise the target FPIR or calibrate on more impostor pairs"
        )
    return table.threshold_for(fmr), fmr


def openset_threshold(
    cal: OpenSetCalibration, fpir: float, comparisons: int
) -> tuple[float, float]:
    """Threshold on normalised scores and per-comparison FMR giving ``fpir`` over
    ``comparisons`` templates (the rates of normalised impostor scores do not depend on the
    gallery's size, so the independent-comparisons rule applies)."""
    fmr = comparison_fmr_for(fpir, comparisons)
    return cal.threshold_for(fmr), fmr


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold a search applies for a target FPIR, and how it was derived."""

    threshold: float
    comparison_fmr: float
    target_fpir: float
    templates: int
    normalisation: str
    extrapolated: bool
    source: ThresholdSource = "model card"
    """Where the threshold comes from: ``model card`` (its calibration) or ``gallery`` (the
    gallery's own leave-one-subject-out searches, ``faceledger.gallery.selfcal``)."""


def operating_point(
    card: ModelCard, mode: str, fpir: float, templates: int
) -> tuple[OperatingPoint, OpenSetCalibration | None]:
    """Declared threshold for ``fpir`` over ``templates`` templates (one rule for ``search``,
    ``eval identify`` and the benchmarks)."""
    cal = normalisation_for(card, mode, templates)
    if cal is None:
        t, fmr = threshold_for_fpir(require_calibration(card), fpir, templates)
        return OperatingPoint(t, fmr, fpir, templates, "none", False), None
    t, fmr = openset_threshold(cal, fpir, templates)
    return OperatingPoint(t, fmr, fpir, templates, cal.normalisation, cal.extrapolated(fmr)), cal


def declared_point(
    card: ModelCard,
    mode: str,
    fpir: float,
    templates: int,
    gallery_cal: GalleryCalibration | None,
) -> tuple[OperatingPoint, OpenSetCalibration | None]:
    """:func:`operating_point`, with the threshold counted on the gallery itself when its
    leave-one-subject-out searches can count ``fpir`` (see ``match.gallery_calibration``)."""
    point, cal = operating_point(card, mode, fpir, templates)
    if (
        gallery_cal is None
        or gallery_cal.normalisation != point.normalisation
        or not gallery_cal.supports(fpir, templates)
    ):
        return point, cal
    t = gallery_cal.threshold_for(fpir, templates)
    return dataclasses.replace(point, threshold=t, extrapolated=False, source="gallery"), cal


def candidate_fpir(
    est: FMREstimate, score: float, templates: int, own: GalleryCalibration | None
) -> float:
    """A candidate's FPIR: counted on the gallery when its threshold was, else from the
    per-comparison FMR over ``templates`` independent comparisons."""
    if own is not None:
        return own.fpir_at(score, templates)[0]
    return float(-np.expm1(templates * np.log1p(-min(est.value, 1.0 - 1e-12))))


@dataclass(frozen=True)
class SubjectScore:
    """One ranked subject of a search, named (the input of :func:`candidate_list`)."""

    gallery: str
    subject_id: int
    external_id: str
    display_name: str | None
    template_id: int
    score: float
    similarity: float | None = None


@dataclass(frozen=True)
class Candidate:
    rank: int
    gallery: str
    subject_id: int
    external_id: str
    display_name: str | None
    score: float
    """The score the threshold applies to: the normalised score when the search normalised
    (``FaceCandidates.normalisation``), else the cosine similarity."""
    fmr: FMREstimate
    """Estimated false-match rate of this score for one comparison."""
    template_id: int
    """The subject's best-matching template."""
    similarity: float | None = None
    """Cosine similarity of the probe and ``template_id`` (the raw score)."""
    fpir: float | None = None
    """Estimated chance that a search of this many templates for someone not enrolled returns
    a candidate scoring at least this much: 1 - (1 - fmr)^templates."""


@dataclass(frozen=True)
class FaceCandidates:
    face: FaceResult
    candidates: tuple[Candidate, ...]
    threshold: float
    comparison_fmr: float
    """Per-comparison FMR that gives the target FPIR over this many templates."""
    normalisation: str = "none"
    """``asnorm`` when scores and threshold are normalised, ``none`` for cosine similarity."""
    extrapolated: bool = False
    """The threshold's per-comparison FMR is below what the calibration's pairs measured; it
    comes from the calibration's fitted tail model."""

    threshold_source: ThresholdSource = "model card"
    """``gallery`` when the threshold was counted on the searched galleries' own members
    (``gallery.selfcal``), else ``model card``."""

    @property
    def outcome(self) -> str:
        return "candidates" if self.candidates else "no_candidate"


def candidate_list(
    scores: Sequence[SubjectScore],
    point: OperatingPoint,
    rates: ScoreRates,
    own: GalleryCalibration | None,
) -> tuple[Candidate, ...]:
    """The candidates of one face: the subjects scoring at least the threshold, in the order
    given (best first), each with its estimated FMR and FPIR. FPIR is counted on the gallery
    (``own``) when the threshold was, else derived from the FMR over ``point.templates``."""
    by_gallery = own if point.source == "gallery" else None
    out: list[Candidate] = []
    for s in scores:
        if s.score < point.threshold:
            continue
        est = rates.fmr_at(s.score)
        out.append(
            Candidate(
                rank=len(out) + 1,
                gallery=s.gallery,
                subject_id=s.subject_id,
                external_id=s.external_id,
                display_name=s.display_name,
                score=s.score,
                fmr=est,
                template_id=s.template_id,
                similarity=s.similarity,
                fpir=candidate_fpir(est, s.score, point.templates, by_gallery),
            )
        )
    return tuple(out)


def face_candidates(
    face: FaceResult, candidates: tuple[Candidate, ...], point: OperatingPoint
) -> FaceCandidates:
    """One face's outcome at ``point``."""
    return FaceCandidates(
        face,
        candidates,
        point.threshold,
        point.comparison_fmr,
        point.normalisation,
        point.extrapolated,
        point.source,
    )


def rates_for(card: ModelCard, cal: OpenSetCalibration | None) -> ScoreRates:
    """The rates scores of a search are read against: the open-set calibration when the
    search normalised, else the card's 1:1 table."""
    return cal if cal is not None else require_calibration(card)
