"""What the service adds around the gallery functions: kept images, audited 1:1 checks and
image views, and who may read which search. Blocking; route handlers run these in threads.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faceledger.access import Operation, PurposePolicy, User, authorize, is_allowed
from faceledger.api.service import Service
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import (
    Conflict,
    FaceLedgerError,
    InvalidArgument,
    NoFace,
    NotFound,
    PermissionDenied,
    StoreError,
)
from faceledger.gallery import (
    ErasureReceipt,
    SearchResult,
    delete_subject,
    enrol_image,
    search,
    verify_erased,
)
from faceledger.gallery.enrol import EnrolResult
from faceledger.gallery.images import StoredImage, media_type_of
from faceledger.gallery.search import keep_probe_image
from faceledger.match import decide
from faceledger.pipeline import VerifyResult
from faceledger.review import SearchRecord
from faceledger.store import LegalBasis
from faceledger.types import Decision, FaceResult

log = logging.getLogger("faceledger.api")

OP_IMAGE_VIEW = "image_view"
OP_PROBE_VIEW = "probe_view"


@dataclass(frozen=True)
class Enrolled:
    result: EnrolResult
    image_sha256: str
    image_kept: bool


def enrol_upload(
    svc: Service,
    actor: User,
    gallery: str,
    external_id: str,
    data: bytes,
    *,
    display_name: str | None = None,
    attributes: dict[str, str] | None = None,
    legal_basis: LegalBasis | str | None = None,
    source: str | None = None,
) -> Enrolled:
    """Enrol uploaded bytes and keep the image for reviewers (when the service does)."""
    result = enrol_image(
        svc.ws,
        actor,
        gallery,
        data,
        external_id,
        display_name=display_name,
        attributes=attributes,
        legal_basis=legal_basis,
        source=source,
    )
    sha = hashlib.sha256(data).hexdigest()
    kept = False
    if svc.options.keep_images:
        try:
            svc.images.put(result.template_id, sha, data, media_type_of(data))
            kept = True
        except (Conflict, StoreError) as exc:  # the template was erased meanwhile
            log.warning("image of template %s not kept: %s", result.template_id, exc.message)
    return Enrolled(result, sha, kept)


def erase_subject(
    svc: Service, actor: User, gallery: str, external_id: str, reason: str
) -> tuple[ErasureReceipt, int]:
    """Delete a subject (receipt in the audit log); also returns how many kept images went
    with its templates (the database cascade removes them in the deleting transaction)."""
    authorize(actor, Operation.DELETE_SUBJECT, gallery)
    g = svc.ws.store.get_gallery_by_name(gallery)
    found = svc.ws.store.find_subject(g.id, external_id)
    held = 0
    if found is not None:
        held = len(svc.images.held(t.id for t in svc.ws.store.list_templates(found.id)))
    receipt = delete_subject(svc.ws, actor, gallery, external_id, reason=reason)
    return receipt, held


def check_erasure(svc: Service, receipt_seq: int) -> dict[str, Any]:
    """:func:`verify_erased`, plus: no kept image of the receipt's hashes is left."""
    report = verify_erased(svc.ws, receipt_seq)
    raw = svc.ws.audit.get(receipt_seq).record.details.get("image_sha256s")
    hashes = [str(h) for h in raw] if isinstance(raw, list) else []
    gallery = svc.ws.store.list_galleries()
    gid = next((g.id for g in gallery if g.name == report.get("gallery")), None)
    held = svc.images.hashes_held(hashes, gid)
    report["enrolled_images_still_held"] = held
    report["ok"] = bool(report["ok"]) and not held
    return report


def search_upload(
    svc: Service,
    actor: User,
    data: bytes,
    galleries: Sequence[str],
    *,
    purpose: str | None,
    case_ref: str | None,
    k: int | None,
    fpir: float | None,
    all_faces: bool,
) -> tuple[SearchResult, bool]:
    """Run an audited 1:N search and keep the probe with it for the reviewers."""
    result = search(
        svc.ws,
        actor,
        data,
        galleries,
        purpose=purpose,
        case_ref=case_ref,
        k=k,
        fpir=fpir,
        all_faces=all_faces,
        keep_probe=False,  # kept below: a probe that cannot be kept does not fail the search
    )
    kept = False
    if svc.options.keep_probes:
        try:
            keep_probe_image(svc.images, result, data)
            kept = True
        except FaceLedgerError as exc:
            log.warning("probe of search %s not kept: %s", result.search_id, exc.message)
    return result, kept


def _check_fmr(fmr: float | None) -> None:
    if fmr is not None and not 0.0 < fmr < 1.0:
        raise InvalidArgument(f"target FMR must be in (0, 1), got {fmr}")


def verify_pair(
    svc: Service,
    actor: User,
    a: bytes,
    b: bytes,
    *,
    fmr: float | None,
    purpose: str | None,
    case_ref: str | None,
) -> tuple[VerifyResult, int]:
    """1:1 between two uploads, audited (with purpose when the deployment requires one)."""
    authorize(actor, Operation.VERIFY)
    purpose, case_ref = PurposePolicy(svc.settings.verify_requires_purpose).check(
        Operation.VERIFY, purpose, case_ref
    )
    _check_fmr(fmr)
    result = svc.ws.engine.verify(a, b, fmr=fmr)
    entry = svc.ws.audit.append(
        AuditRecord(
            operation=AuditOp.VERIFY,
            actor=actor.id,
            purpose=purpose,
            case_ref=case_ref,
            model_id=result.decision.model_id,
            threshold=round(result.decision.threshold, 6),
            target_fmr=result.decision.target_fmr,
            details={
                "image_a_sha256": hashlib.sha256(a).hexdigest(),
                "image_b_sha256": hashlib.sha256(b).hexdigest(),
                "score": round(result.decision.score, 6),
                "fmr": result.decision.fmr.value,
                "outcome": result.decision.outcome.value,
            },
        )
    )
    return result, entry.seq


@dataclass(frozen=True)
class SubjectCheck:
    decision: Decision
    face: FaceResult
    template_id: int
    audit_seq: int


def verify_subject(
    svc: Service,
    actor: User,
    gallery: str,
    external_id: str,
    data: bytes,
    *,
    fmr: float | None,
    purpose: str | None,
    case_ref: str | None,
) -> SubjectCheck:
    """1:1 of an upload against an enrolled subject (its best-matching template), audited."""
    ws = svc.ws
    authorize(actor, Operation.VERIFY, gallery)
    g = ws.store.get_gallery_by_name(gallery)
    purpose, case_ref = PurposePolicy(svc.settings.verify_requires_purpose).check(
        Operation.VERIFY, purpose, case_ref
    )
    _check_fmr(fmr)
    found = ws.store.find_subject(g.id, external_id)
    if found is None:
        raise NotFound(f"no subject {external_id!r} in gallery {g.name!r}")
    stored = ws.store.get_templates([t.id for t in ws.store.list_templates(found.id)])
    if not stored:
        raise NotFound(f"subject {external_id!r} has no template")
    face = ws.engine.embed(data)
    if face.template is None:  # pragma: no cover - embed always returns a template
        raise NoFace("no face found in the image")
    probe = face.template
    best = max(stored.values(), key=lambda t: (probe.similarity(t.template), -t.id))
    dec = decide(probe, best.template, ws.engine.card, fmr or svc.settings.default_fmr)
    entry = ws.audit.append(
        AuditRecord(
            operation=AuditOp.VERIFY,
            actor=actor.id,
            purpose=purpose,
            case_ref=case_ref,
            galleries=(g.name,),
            model_id=dec.model_id,
            threshold=round(dec.threshold, 6),
            target_fmr=dec.target_fmr,
            probe_sha256=hashlib.sha256(data).hexdigest(),
            details={
                "subject": found.external_id,
                "template_id": best.id,
                "score": round(dec.score, 6),
                "fmr": dec.fmr.value,
                "outcome": dec.outcome.value,
            },
        )
    )
    return SubjectCheck(dec, face, best.id, entry.seq)


def enrolled_image(svc: Service, actor: User, gallery: str, template_id: int) -> StoredImage:
    """The kept image of a template of ``gallery``, for a user with ``view_images`` on it."""
    ws = svc.ws
    authorize(actor, Operation.VIEW_IMAGES, gallery)
    g = ws.store.get_gallery_by_name(gallery)
    found = ws.store.get_templates([template_id]).get(template_id)
    if found is None or found.info.gallery_id != g.id:
        raise NotFound(f"no template {template_id} in gallery {g.name!r}")
    image = svc.images.get(template_id)
    if svc.options.audit_image_views:
        ws.audit.append(
            AuditRecord(
                operation=OP_IMAGE_VIEW,
                actor=actor.id,
                galleries=(g.name,),
                details={
                    "template_id": template_id,
                    "subject": ws.store.get_subject(found.info.subject_id).external_id,
                    "image_sha256": image.sha256,
                },
            )
        )
    return image


def readable_search(
    svc: Service, actor: User, search_id: str
) -> tuple[SearchRecord, set[str] | None]:
    """A search ``actor`` may read and the galleries whose leads they may see (None: all).

    The searcher and auditors see the whole search; anyone else sees the leads from the
    galleries they may read searches of (reviewers of a shared gallery see only theirs).
    """
    authorize(actor, Operation.READ_SEARCHES)
    record = svc.ws.reviews.search(search_id)
    if actor.id == record.actor or is_allowed(actor, Operation.AUDIT_READ):
        return record, None
    galleries = {g for g in record.galleries if is_allowed(actor, Operation.READ_SEARCHES, g)}
    if not galleries:
        raise PermissionDenied(f"user {actor.id!r} may not read search {search_id}")
    return record, galleries


def probe_image(svc: Service, actor: User, search_id: str) -> StoredImage:
    """The probe of a search: for its searcher, and reviewers of any gallery it searched."""
    authorize(actor, Operation.READ_SEARCHES)
    record = svc.ws.reviews.search(search_id)
    allowed = actor.id == record.actor or any(
        is_allowed(actor, Operation.REVIEW, g) for g in record.galleries
    )
    if not allowed:
        raise PermissionDenied(f"user {actor.id!r} may not see the probe of search {search_id}")
    image = svc.images.get_probe(search_id)
    if svc.options.audit_image_views:
        svc.ws.audit.append(
            AuditRecord(
                operation=OP_PROBE_VIEW,
                actor=actor.id,
                galleries=record.galleries,
                purpose=record.purpose,
                case_ref=record.case_ref,
                details={"search_id": search_id, "image_sha256": image.sha256},
            )
        )
    return image
