"""1:N search: a probe's face(s) against galleries → ranked candidate lists for human review.

Each face gets at most ``k`` candidates, one per subject, whose score passes a threshold set
from a target false-positive identification rate (FPIR); when none passes, the outcome is an
explicit "no candidate". Every search states a purpose and case reference, is authorised per
gallery and lands in the audit log with the leads it returned (``Reviews.record_search``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord, Lead
from faceledger.errors import CalibrationError, InvalidArgument, NoFace
from faceledger.gallery.workspace import Workspace
from faceledger.match import require_calibration
from faceledger.models import CalibrationTable
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
    fmr: FMREstimate
    """Estimated false-match rate of this score for one comparison."""
    template_id: int
    """The subject's best-matching template."""


@dataclass(frozen=True)
class FaceCandidates:
    face: FaceResult
    candidates: tuple[Candidate, ...]
    threshold: float
    comparison_fmr: float
    """Per-comparison FMR that gives the target FPIR over this many templates."""

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


@dataclass(frozen=True)
class RankedSubject:
    gallery: Gallery
    subject_id: int
    template_id: int
    score: float


def rank_subjects(
    ws: Workspace, galleries: Sequence[Gallery], template: Template, k: int
) -> list[RankedSubject]:
    """The best ``k`` subjects over ``galleries`` for one template, best first.

    A subject's score is its best template's similarity (``aggregation = max``) or the
    similarity to its L2-normalised mean template (``fused``). Ties break by template id.
    """
    best: dict[tuple[int, int], RankedSubject] = {}
    for g in galleries:
        idx = ws.indexes.get(g, template.dimension)
        if len(idx) == 0:
            continue
        hits = idx.search(template.vector[None, :], min(len(idx), k * SHORTLIST_FACTOR)).row(0)
        infos = ws.store.get_templates([tid for tid, _ in hits])
        for tid, score in hits:
            info = infos.get(tid)
            if info is None:
                continue
            key = (g.id, info.info.subject_id)
            if key not in best or score > best[key].score:
                best[key] = RankedSubject(g, info.info.subject_id, tid, score)
    ranked = list(best.values())
    if ws.settings.aggregation == "fused":
        ranked = [_fused(ws, r, template) for r in ranked]
    ranked.sort(key=lambda r: (-r.score, r.template_id))
    return ranked[:k]


def _fused(ws: Workspace, r: RankedSubject, probe: Template) -> RankedSubject:
    ids = [t.id for t in ws.store.list_templates(r.subject_id)]
    vecs = np.stack([t.vector for t in ws.store.get_templates(ids).values()])
    mean = vecs.mean(axis=0)
    mean /= np.linalg.norm(mean) or 1.0
    return RankedSubject(r.gallery, r.subject_id, r.template_id, float(mean @ probe.vector))


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
    threshold, cmp_fmr = threshold_for_fpir(table, fpir, total)
    results: list[FaceCandidates] = []
    leads: list[Lead] = []
    for face in faces:
        assert face.template is not None
        ranked = [r for r in rank_subjects(ws, gals, face.template, k) if r.score >= threshold]
        subjects = ws.store.get_subjects([r.subject_id for r in ranked])
        cands = tuple(
            Candidate(
                rank=i + 1,
                gallery=r.gallery.name,
                subject_id=r.subject_id,
                external_id=subjects[r.subject_id].external_id,
                display_name=subjects[r.subject_id].display_name,
                score=r.score,
                fmr=table.fmr_at(r.score),
                template_id=r.template_id,
            )
            for i, r in enumerate(ranked)
        )
        results.append(FaceCandidates(face, cands, threshold, cmp_fmr))
        leads.extend(
            Lead(
                gallery=c.gallery,
                subject_id=c.external_id,
                score=round(c.score, 6),
                fmr=c.fmr.value,
                fmr_upper_bound=c.fmr.upper_bound,
                template_id=c.template_id,
            )
            for c in cands
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
