"""1:N search: a probe's face(s) against galleries → ranked candidate lists for human review.

Each face gets at most ``k`` candidates, one per subject, whose score passes a threshold set
from a target false-positive identification rate (FPIR); when none passes, the outcome is an
explicit "no candidate". Every search states a purpose and case reference, is authorised per
gallery and lands in the audit log with the leads it returned (``Reviews.record_search``).

Scores: with ``Settings.normalisation = "asnorm"`` (the default) and a model card holding an
open-set calibration, galleries of at least its cohort size are scored by adaptive symmetric
normalisation against a sample of their own templates (``faceledger.match.normalise``), and the
FPIR threshold and per-candidate rates come from that calibration; smaller galleries, or
``"none"``, use raw cosine similarity and the card's 1:1 calibration table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord, Lead
from faceledger.errors import CalibrationError, InvalidArgument, NoFace
from faceledger.gallery.images import ImageStore, media_type_of
from faceledger.gallery.ranking import normalisation_for, rank
from faceledger.gallery.selfcal import gallery_calibration
from faceledger.gallery.workspace import Workspace
from faceledger.match import require_calibration
from faceledger.match.gallery_calibration import GalleryCalibration
from faceledger.models import CalibrationTable
from faceledger.models.calibration import OpenSetCalibration
from faceledger.models.card import ModelCard
from faceledger.pipeline import ImageInput
from faceledger.serialize import face_record
from faceledger.types import FaceResult, FMREstimate

ThresholdSource = Literal["gallery", "model card"]


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


@dataclass(frozen=True)
class SearchResult:
    search_id: str
    audit_seq: int
    probe_sha256: str
    galleries: tuple[str, ...]
    model_id: str
    target_fpir: float
    templates_searched: int
    faces: tuple[FaceCandidates, ...]


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


def search(
    ws: Workspace,
    actor: User,
    image: ImageInput,
    galleries: Sequence[str],
    *,
    purpose: str | None,
    case_ref: str | None,
    k: int | None = None,
    fpir: float | None = None,
    all_faces: bool = False,
    keep_probe: bool | None = None,
) -> SearchResult:
    """Search ``image``'s face(s) in ``galleries`` for ``purpose`` (audited).

    ``keep_probe`` (default ``Settings.keep_probe_images``) keeps the probe image in the image
    store for its reviewers, where retention and erasure reach it.
    """
    purpose, case_ref = require_purpose(purpose, case_ref)
    if not galleries:
        raise InvalidArgument("name at least one gallery to search")
    gals = [ws.store.get_gallery_by_name(name) for name in dict.fromkeys(galleries)]
    for g in gals:
        authorize(actor, Operation.SEARCH, g.name)
    engine = ws.engine
    card = engine.card
    table = require_calibration(card)
    for g in gals:
        if g.model_id != card.id:
            raise InvalidArgument(
                f"gallery {g.name!r} holds templates of model {g.model_id!r}, not {card.id!r}"
            )
    k = k or ws.settings.top_k
    if not 1 <= k <= 1000:
        raise InvalidArgument("k must be between 1 and 1000")
    fpir = fpir if fpir is not None else ws.settings.default_fpir
    img = engine.load(image)
    faces = engine.embed_all(img) if all_faces else [engine.embed(img)]
    if not faces:
        raise NoFace("no face found in the probe image")
    total = sum(len(ws.indexes.get(g, card.dimension)) for g in gals)
    own = gallery_calibration(ws, gals, fpir)
    point, cal = declared_point(card, ws.settings.normalisation, fpir, total, own)
    by_gallery = point.source == "gallery"
    threshold = point.threshold
    results: list[FaceCandidates] = []
    leads: list[Lead] = []
    for face in faces:
        assert face.template is not None
        ranked = [r for r in rank(ws, gals, face.template, k).subjects if r.score >= threshold]
        subjects = ws.store.get_subjects([r.subject_id for r in ranked])
        cands = []
        for i, r in enumerate(ranked):
            est = cal.fmr_at(r.score) if cal is not None else table.fmr_at(r.score)
            cands.append(
                Candidate(
                    rank=i + 1,
                    gallery=r.gallery.name,
                    subject_id=r.subject_id,
                    external_id=subjects[r.subject_id].external_id,
                    display_name=subjects[r.subject_id].display_name,
                    score=r.score,
                    fmr=est,
                    template_id=r.template_id,
                    similarity=r.similarity,
                    fpir=candidate_fpir(est, r.score, total, own if by_gallery else None),
                )
            )
        results.append(
            FaceCandidates(
                face,
                tuple(cands),
                threshold,
                point.comparison_fmr,
                point.normalisation,
                point.extrapolated,
                point.source,
            )
        )
        leads.extend(
            Lead(
                gallery=c.gallery,
                subject_id=c.external_id,
                score=round(c.score, 6),
                fmr=c.fmr.value,
                fmr_upper_bound=c.fmr.upper_bound,
                template_id=c.template_id,
            )
            for c in results[-1].candidates
        )
    record = ws.reviews.record_search(
        actor,
        AuditRecord(
            operation=AuditOp.SEARCH,
            actor=actor.id,
            purpose=purpose,
            case_ref=case_ref,
            galleries=tuple(g.name for g in gals),
            model_id=card.id,
            threshold=round(threshold, 6),
            target_fpir=fpir,
            probe_sha256=img.sha256,
            candidates=tuple(leads),
            details={
                "faces": len(results),
                "templates_searched": total,
                "outcomes": [r.outcome for r in results],
                "k": k,
                "normalisation": point.normalisation,
                "comparison_fmr": point.comparison_fmr,
                "threshold_extrapolated": point.extrapolated,
                "threshold_source": point.source,
            },
        ),
    )
    result = SearchResult(
        search_id=record.search_id,
        audit_seq=record.audit_seq,
        probe_sha256=img.sha256,
        galleries=tuple(g.name for g in gals),
        model_id=card.id,
        target_fpir=fpir,
        templates_searched=total,
        faces=tuple(results),
    )
    if keep_probe if keep_probe is not None else ws.settings.keep_probe_images:
        data = img_bytes(image)
        if data is not None:
            keep_probe_image(ws.images, result, data)
    return result


def keep_probe_image(images: ImageStore, result: SearchResult, data: bytes) -> None:
    """Keep a search's probe image for its reviewers, with the record of its faces."""
    faces = [face_record(f.face) for f in result.faces]
    images.put_probe(result.search_id, result.probe_sha256, data, media_type_of(data), faces)


def candidate_fpir(
    est: FMREstimate, score: float, templates: int, own: GalleryCalibration | None
) -> float:
    """A candidate's FPIR: counted on the gallery when its threshold was, else from the
    per-comparison FMR over ``templates`` independent comparisons."""
    if own is not None:
        return own.fpir_at(score, templates)[0]
    return float(-np.expm1(templates * np.log1p(-min(est.value, 1.0 - 1e-12))))


def img_bytes(image: ImageInput) -> bytes | None:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, str):
        from pathlib import Path

        return Path(image).read_bytes()
    from pathlib import Path

    if isinstance(image, Path):
        return image.read_bytes()
    return None
