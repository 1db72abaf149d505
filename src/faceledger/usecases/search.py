"""1:N search: a probe's face(s) against galleries → ranked candidate lists for human review.

Each face gets at most ``k`` candidates, one per subject, whose score passes a threshold set
from a target false-positive identification rate (FPIR); when none passes, the outcome is an
explicit "no candidate". Every search states a purpose and case reference, is authorised per
gallery and lands in the audit log with the leads it returned (``Reviews.record_search``).
The probe is kept for its reviewers when ``SearchRequest.keep_probe`` (default
``Settings.keep_probe_images``) says so; one that cannot be kept does not fail the search.

Scores: galleries of at least the card's cohort size are scored by adaptive symmetric
normalisation against their own templates (``gallery.ranking``); the threshold comes from
the galleries' own count when it can count the target (``gallery.selfcal``) or the model
card; the candidate list itself is :func:`faceledger.match.identify.candidate_list`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord, Lead
from faceledger.errors import FaceLedgerError, InvalidArgument, NoFace
from faceledger.gallery.images import media_type_of
from faceledger.gallery.ranking import rank
from faceledger.gallery.selfcal import gallery_calibration
from faceledger.gallery.workspace import Workspace
from faceledger.match.gallery_calibration import GalleryCalibration
from faceledger.match.identify import (
    Candidate,
    FaceCandidates,
    OperatingPoint,
    ScoreRates,
    SubjectScore,
    candidate_list,
    declared_point,
    face_candidates,
    rates_for,
)
from faceledger.pipeline import Engine, ImageInput
from faceledger.serialize import face_record
from faceledger.store import Gallery
from faceledger.types import DecodedImage, FaceResult, Template
from faceledger.usecases.enrolment import image_bytes
from faceledger.usecases.sharing import (
    SharedUse,
    apply_caps,
    audited_leads,
    masked,
    sharing_terms,
)

log = logging.getLogger("faceledger.usecases")

MAX_K = 1000


@dataclass(frozen=True)
class SearchRequest:
    image: ImageInput
    galleries: tuple[str, ...]
    purpose: str | None
    case_ref: str | None
    k: int | None = None
    """Longest candidate list per face (1-1000; default ``Settings.top_k``)."""
    fpir: float | None = None
    """Target FPIR (default ``Settings.default_fpir``)."""
    all_faces: bool = False
    faces: tuple[int, ...] | None = None
    """Search only these faces of the probe (their ``face_index``, as detection lists them),
    chosen by the searcher; overrides ``all_faces``."""
    keep_probe: bool | None = None
    """Keep the probe for reviewers (default ``Settings.keep_probe_images``)."""
    keep_probe_only_with_leads: bool = False
    """Keep it only when a face got candidates: a field search (a person stopped in the street
    and checked) keeps nothing of someone who matched no one, as video search does."""


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
    probe_kept: bool = False
    owners: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The organisation owning each gallery searched."""
    redacted: frozenset[str] = frozenset()
    """Galleries whose leads name no subject until their owner releases them."""


@dataclass(frozen=True)
class SearchPlan:
    """What a search applies to every face: the galleries and the declared operating point
    (shared by image and video search)."""

    galleries: list[Gallery]
    k: int
    point: OperatingPoint
    rates: ScoreRates
    own: GalleryCalibration | None
    sharing: SharedUse | None = None
    """How each gallery is searched (owner, agreement, cap, redaction), once known."""

    def audit_record(
        self,
        operation: str,
        actor: User,
        purpose: str,
        case_ref: str,
        model_id: str,
        probe_sha256: str | None,
        leads: tuple[Lead, ...],
        details: dict[str, Any],
    ) -> AuditRecord:
        """The audit record of a search at this plan: ``details`` plus the operating point."""
        point = self.point
        return AuditRecord(
            operation=operation,
            actor=actor.id,
            purpose=purpose,
            case_ref=case_ref,
            galleries=tuple(g.name for g in self.galleries),
            model_id=model_id,
            threshold=round(point.threshold, 6),
            target_fpir=point.target_fpir,
            probe_sha256=probe_sha256,
            candidates=leads,
            details={
                **details,
                **({} if self.sharing is None else org_details(self.sharing)),
                "templates_searched": point.templates,
                "k": self.k,
                "normalisation": point.normalisation,
                "comparison_fmr": point.comparison_fmr,
                "threshold_extrapolated": point.extrapolated,
                "threshold_source": point.source,
            },
        )


def search(ws: Workspace, actor: User, req: SearchRequest) -> SearchResult:
    """Search ``req.image``'s face(s) in ``req.galleries`` for ``req.purpose`` (audited)."""
    purpose, case_ref = require_purpose(req.purpose, req.case_ref)
    gals, k, fpir = search_terms(ws, actor, req.galleries, req.k, req.fpir)
    engine = ws.engine_for(gals[0])
    img = engine.load(req.image)
    faces = _chosen_faces(engine, img, req)
    use = sharing_terms(ws, actor, gals, purpose)
    plan = dataclasses.replace(plan_search(ws, gals, k, fpir), sharing=use)
    results = tuple(search_face(ws, plan, face) for face in faces)
    leads = tuple(lead for r in results for lead in leads_of(r.candidates))
    lead_faces = [r.face.face_index for r in results for _ in r.candidates]
    audited = _audit_record(engine.card.id, actor, purpose, case_ref, img, plan, results)
    audited = dataclasses.replace(audited, candidates=audited_leads(ws, leads, use))
    record = ws.reviews.record_search(
        actor, audited, leads=leads, terms=use.terms, lead_faces=lead_faces
    )
    result = SearchResult(
        search_id=record.search_id,
        audit_seq=record.audit_seq,
        probe_sha256=img.sha256,
        galleries=tuple(g.name for g in gals),
        model_id=engine.card.id,
        target_fpir=fpir,
        templates_searched=plan.point.templates,
        faces=tuple(masked(r, use) for r in results),
        owners={g: t.owner_org for g, t in use.terms.items()},
        redacted=use.redacted,
    )
    keep = req.keep_probe if req.keep_probe is not None else ws.settings.keep_probe_images
    if req.keep_probe_only_with_leads and not any(f.candidates for f in results):
        keep = False
    if keep and _keep_probe(ws, result, req.image):
        result = dataclasses.replace(result, probe_kept=True)
    return result


def _chosen_faces(engine: Engine, img: DecodedImage, req: SearchRequest) -> list[FaceResult]:
    """The probe faces to search: the ones the searcher picked, every face, or the subject."""
    if req.faces is not None:
        if not req.faces:
            raise InvalidArgument("pick at least one face to search")
        found = {f.face_index: f for f in engine.embed_all(img)}
        if not found:
            raise NoFace("no face found in the probe image")
        missing = sorted(set(req.faces) - set(found))
        if missing:
            raise InvalidArgument(
                f"the probe has no face {', '.join(map(str, missing))} "
                f"(faces 0-{len(found) - 1} were found)"
            )
        return [found[i] for i in sorted(set(req.faces))]
    faces = engine.embed_all(img) if req.all_faces else [engine.embed(img)]
    if not faces:
        raise NoFace("no face found in the probe image")
    return faces


def org_details(use: SharedUse) -> dict[str, Any]:
    """What a search's audit entry says about organisations (when another's gallery was
    searched): who searched, whose galleries under which agreement; both parties' scopes."""
    if all(t.agreement_id is None for t in use.terms.values()):
        return {}
    owners = sorted({t.owner_org for t in use.terms.values()})
    return {
        "requester_org": use.requester_org,
        "gallery_orgs": {g: t.owner_org for g, t in use.terms.items()},
        "agreements": {g: t.agreement_id for g, t in use.terms.items() if t.agreement_id},
        "redacted_galleries": sorted(use.redacted),
        "orgs": sorted({*owners, *([use.requester_org] if use.requester_org else [])}),
    }


def search_terms(
    ws: Workspace, actor: User, names: Sequence[str], k: int | None, fpir: float | None
) -> tuple[list[Gallery], int, float]:
    """The authorised galleries, the list length and the target FPIR of a search (image or
    video), defaults from the settings."""
    gals = authorised_galleries(ws, actor, names)
    k = k if k is not None else ws.settings.top_k
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"k must be between 1 and {MAX_K}, got {k}")
    fpir = fpir if fpir is not None else ws.settings.default_fpir
    return gals, k, fpir


def authorised_galleries(ws: Workspace, actor: User, names: Sequence[str]) -> list[Gallery]:
    """The galleries named (each once), each authorised, all of one model (a probe is embedded
    once, with the model and recipe of the galleries' templates)."""
    if not names:
        raise InvalidArgument("name at least one gallery to search")
    unique = list(dict.fromkeys(names))
    for name in unique:
        authorize(actor, Operation.SEARCH, name)
    gals = [ws.store.get_gallery_by_name(name) for name in unique]
    model = gals[0].model_id
    for g in gals[1:]:
        if g.model_id != model:
            raise InvalidArgument(
                f"gallery {g.name!r} holds templates of model {g.model_id!r} and gallery "
                f"{gals[0].name!r} of {model!r}: search galleries of one model at a time"
            )
    return gals


def plan_search(ws: Workspace, gals: list[Gallery], k: int, fpir: float) -> SearchPlan:
    card = ws.engine_for(gals[0]).card
    total = sum(len(ws.indexes.get(g, card.dimension)) for g in gals)
    own = gallery_calibration(ws, gals, fpir)
    point, cal = declared_point(card, ws.settings.normalisation, fpir, total, own)
    return SearchPlan(gals, k, point, rates_for(card, cal), own)


def search_face(ws: Workspace, plan: SearchPlan, face: FaceResult) -> FaceCandidates:
    """One face's candidate list."""
    template: Template | None = face.template
    assert template is not None
    ranked = rank(ws, plan.galleries, template, plan.k).subjects  # before the agreements' caps
    subjects = ws.store.get_subjects([r.subject_id for r in ranked])
    scores = [
        SubjectScore(
            gallery=r.gallery.name,
            subject_id=r.subject_id,
            external_id=subjects[r.subject_id].external_id,
            display_name=subjects[r.subject_id].display_name,
            template_id=r.template_id,
            score=r.score,
            similarity=r.similarity,
        )
        for r in ranked
    ]
    found = face_candidates(
        face, candidate_list(scores, plan.point, plan.rates, plan.own), plan.point
    )
    return found if plan.sharing is None else apply_caps(found, plan.sharing)


def _audit_record(
    model_id: str,
    actor: User,
    purpose: str,
    case_ref: str,
    img: DecodedImage,
    plan: SearchPlan,
    results: Sequence[FaceCandidates],
) -> AuditRecord:
    leads = tuple(lead for r in results for lead in leads_of(r.candidates))
    details: dict[str, Any] = {
        "faces": len(results),
        "faces_in_image": results[0].face.faces_in_image,
        "face_indexes": [r.face.face_index for r in results],
        "outcomes": [r.outcome for r in results],
    }
    return plan.audit_record(
        AuditOp.SEARCH, actor, purpose, case_ref, model_id, img.sha256, leads, details
    )


def leads_of(candidates: Sequence[Candidate]) -> tuple[Lead, ...]:
    """Candidates as the audit log and the review desk record them."""
    return tuple(
        Lead(
            gallery=c.gallery,
            subject_id=c.external_id,
            score=round(c.score, 6),
            fmr=c.fmr.value,
            fmr_upper_bound=c.fmr.upper_bound,
            template_id=c.template_id,
        )
        for c in candidates
    )


def keep_probe_image(ws: Workspace, result: SearchResult, data: bytes) -> None:
    """Keep a search's probe image for its reviewers, with the record of its faces."""
    faces = [face_record(f.face) for f in result.faces]
    ws.images.put_probe(result.search_id, result.probe_sha256, data, media_type_of(data), faces)


def _keep_probe(ws: Workspace, result: SearchResult, image: ImageInput) -> bool:
    data = image_bytes(image)
    if data is None:
        return False
    try:
        keep_probe_image(ws, result, data)
    except FaceLedgerError as exc:
        log.warning("probe of search %s not kept: %s", result.search_id, exc.message)
        return False
    return True
