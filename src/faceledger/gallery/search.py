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

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord, Lead
from faceledger.errors import CalibrationError, InvalidArgument, NoFace
from faceledger.gallery.workspace import Workspace
from faceledger.index import VectorIndex
from faceledger.match import require_calibration
from faceledger.match.normalise import (
    Cohort,
    as_norm,
    candidate_stats,
    probe_stats,
    select_evenly,
)
from faceledger.models import CalibrationTable
from faceledger.models.calibration import OpenSetCalibration
from faceledger.models.card import ModelCard
from faceledger.pipeline import ImageInput
from faceledger.store import Gallery
from faceledger.types import FaceResult, FMREstimate, Template

SHORTLIST_FACTOR = 8
"""Templates fetched per wanted candidate, so subjects with many templates still fill k."""


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


def normalisation_for(card: ModelCard, mode: str, templates: int) -> OpenSetCalibration | None:
    """The open-set calibration a search of ``templates`` templates normalises with, or None
    (normalisation off, no calibration on the card, or fewer templates than its cohort)."""
    cal = card.openset
    if mode == "none" or cal is None or templates < cal.cohort_size:
        return None
    return cal


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold a search applies for a target FPIR, and how it was derived."""

    threshold: float
    comparison_fmr: float
    target_fpir: float
    templates: int
    normalisation: str
    extrapolated: bool


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


@dataclass(frozen=True)
class RankedSubject:
    gallery: Gallery
    subject_id: int
    template_id: int
    score: float
    similarity: float = float("nan")
    """Raw cosine similarity to ``template_id`` (``score`` is normalised when the ranking was)."""


@dataclass(frozen=True)
class Ranking:
    subjects: list[RankedSubject]
    normalisation: OpenSetCalibration | None
    templates: int


def rank_subjects(
    ws: Workspace, galleries: Sequence[Gallery], template: Template, k: int
) -> list[RankedSubject]:
    """The best ``k`` subjects over ``galleries`` for one template, best first (see
    :func:`rank`)."""
    return rank(ws, galleries, template, k).subjects


def rank(ws: Workspace, galleries: Sequence[Gallery], template: Template, k: int) -> Ranking:
    """The best ``k`` subjects over ``galleries`` for one template, best first.

    A subject's score is its best template's score (``aggregation = max``) or the score of its
    L2-normalised mean template (``fused``); scores are AS-normalised when
    :func:`normalisation_for` says so, re-ranking the raw shortlist. Ties break by template id.
    """
    indexes = [(g, ws.indexes.get(g, template.dimension)) for g in galleries]
    total = sum(len(idx) for _, idx in indexes)
    cal = normalisation_for(ws.engine.card, ws.settings.normalisation, total)
    hits: dict[int, tuple[Gallery, float]] = {}
    for g, idx in indexes:
        if len(idx) == 0:
            continue
        found = idx.search(template.vector[None, :], min(len(idx), k * SHORTLIST_FACTOR)).row(0)
        for tid, score in found:
            hits[tid] = (g, score)
    best: dict[tuple[int, int], RankedSubject] = {}
    if cal is None:
        infos = ws.store.get_templates(list(hits))
        for tid, (g, score) in hits.items():
            info = infos.get(tid)
            if info is None:
                continue
            key = (g.id, info.info.subject_id)
            if key not in best or score > best[key].score:
                best[key] = RankedSubject(g, info.info.subject_id, tid, score, score)
        ranked = list(best.values())
        if ws.settings.aggregation == "fused":
            ranked = [_fused(ws, r, template) for r in ranked]
    else:
        state = _cohort(ws, indexes, cal)
        missing = [t for t in hits if t not in state.templates]
        if missing:
            stored = ws.store.get_templates(missing)
            fresh = [t for t in missing if t in stored]
            if fresh:
                subs = np.array([stored[t].info.subject_id for t in fresh], dtype=np.int64)
                vecs = np.stack([stored[t].vector for t in fresh])
                gm, gs = candidate_stats(vecs, subs, state.cohort, cal.top_k)
                for i, t in enumerate(fresh):
                    state.templates[t] = (int(subs[i]), float(gm[i]), float(gs[i]))
        tids = [t for t in hits if t in state.templates]
        if tids:
            known = np.array([state.templates[t] for t in tids], dtype=np.float64)
            subjects = known[:, 0].astype(np.int64)
            raw = np.array([hits[t][1] for t in tids], dtype=np.float64)
            pm, ps = probe_stats(template.vector, subjects, state.cohort, cal.top_k)
            z = as_norm(raw, pm, ps, known[:, 1], known[:, 2])
            for i, tid in enumerate(tids):
                g = hits[tid][0]
                key = (g.id, int(subjects[i]))
                if key not in best or z[i] > best[key].score:
                    best[key] = RankedSubject(g, int(subjects[i]), tid, float(z[i]), float(raw[i]))
        ranked = list(best.values())
        if ws.settings.aggregation == "fused":
            ranked = _fused_normalised(ws, ranked, template, state, cal.top_k)
    ranked.sort(key=lambda r: (-r.score, r.template_id))
    return Ranking(ranked[:k], cal, total)


def _mean_template(ws: Workspace, subject_id: int) -> npt.NDArray[np.float64]:
    ids = [t.id for t in ws.store.list_templates(subject_id)]
    vecs = np.stack([t.vector for t in ws.store.get_templates(ids).values()])
    mean = vecs.astype(np.float64).mean(axis=0)
    return np.asarray(mean / (np.linalg.norm(mean) or 1.0), dtype=np.float64)


def _fused(ws: Workspace, r: RankedSubject, probe: Template) -> RankedSubject:
    mean = _mean_template(ws, r.subject_id)
    raw = float(mean @ probe.vector)
    return RankedSubject(r.gallery, r.subject_id, r.template_id, raw, raw)


def _fused_normalised(
    ws: Workspace, ranked: list[RankedSubject], probe: Template, state: _CohortState, top_k: int
) -> list[RankedSubject]:
    """Shortlisted subjects re-scored by their mean template, AS-normalised (each subject's
    mean template and its cohort statistics are kept with the cohort state)."""
    for r in ranked:
        if r.subject_id not in state.fused:
            mean = _mean_template(ws, r.subject_id)
            gm, gs = candidate_stats(mean[None, :], [r.subject_id], state.cohort, top_k)
            state.fused[r.subject_id] = (mean, float(gm[0]), float(gs[0]))
    if not ranked:
        return ranked
    subjects = np.array([r.subject_id for r in ranked], dtype=np.int64)
    means = np.stack([state.fused[r.subject_id][0] for r in ranked])
    raw = means @ probe.vector.astype(np.float64)
    pm, ps = probe_stats(probe.vector, subjects, state.cohort, top_k)
    gm = np.array([state.fused[r.subject_id][1] for r in ranked])
    gs = np.array([state.fused[r.subject_id][2] for r in ranked])
    z = as_norm(raw, pm, ps, gm, gs)
    return [
        RankedSubject(r.gallery, r.subject_id, r.template_id, float(z[i]), float(raw[i]))
        for i, r in enumerate(ranked)
    ]


@dataclass
class _CohortState:
    """A search cohort and, per gallery template met so far, (subject, top-k mean, spread)."""

    cohort: Cohort
    templates: dict[int, tuple[int, float, float]]
    fused: dict[int, tuple[npt.NDArray[np.float64], float, float]] = field(default_factory=dict)
    """Per subject: its mean template and that template's cohort statistics."""


_COHORTS: weakref.WeakKeyDictionary[object, dict[tuple[int, ...], tuple[bytes, _CohortState]]] = (
    weakref.WeakKeyDictionary()
)
"""Per index manager: galleries searched together → (cohort key, its state)."""


def _cohort(
    ws: Workspace, indexes: Sequence[tuple[Gallery, VectorIndex]], cal: OpenSetCalibration
) -> _CohortState:
    """``cal.cohort_size`` templates of the searched galleries chosen evenly by id. The state
    (with the gallery-side statistics computed so far) is kept until the galleries' template
    ids change in any way: an enrolment or erasure starts a new one."""
    all_ids = [idx.ids() for _, idx in indexes]
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int64)
    chosen = select_evenly(ids, cal.cohort_size)
    digest = hashlib.sha256(np.sort(ids).tobytes()).digest()
    key = tuple(sorted(g.id for g, _ in indexes))
    cache = _COHORTS.setdefault(ws.indexes, {})
    cached = cache.get(key)
    if cached is not None and cached[0] == digest:
        return cached[1]
    found = ws.store.get_templates([int(i) for i in chosen])
    kept = [int(i) for i in chosen if int(i) in found]
    cohort = Cohort(
        np.stack([found[i].vector for i in kept]).astype(np.float32),
        np.array([found[i].info.subject_id for i in kept], dtype=np.int64),
    )
    state = _CohortState(cohort, {}, {})
    cache[key] = (digest, state)
    return state


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
) -> SearchResult:
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
    point, cal = operating_point(card, ws.settings.normalisation, fpir, total)
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
                    fpir=float(-np.expm1(total * np.log1p(-min(est.value, 1.0 - 1e-12)))),
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
            probe_image=img_bytes(image) if ws.settings.keep_probe_images else None,
            candidates=tuple(leads),
            details={
                "faces": len(results),
                "templates_searched": total,
                "outcomes": [r.outcome for r in results],
                "k": k,
                "normalisation": point.normalisation,
                "comparison_fmr": point.comparison_fmr,
                "threshold_extrapolated": point.extrapolated,
            },
        ),
    )
    return SearchResult(
        search_id=record.search_id,
        audit_seq=record.audit_seq,
        probe_sha256=img.sha256,
        galleries=tuple(g.name for g in gals),
        model_id=card.id,
        target_fpir=fpir,
        templates_searched=total,
        faces=tuple(results),
    )


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
