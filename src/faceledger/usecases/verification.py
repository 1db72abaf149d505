"""1:1 verification, audited: two images, or an image against an enrolled subject.

Every audited comparison states a purpose and a case reference and records who, why, the
decision and the images' hashes, never the images. Only the CLI's comparison of two local
files given without a purpose skips this: it runs the engine directly, reads no stored face
and is not audited (README; ``FACELEDGER_VERIFY_REQUIRES_PURPOSE=1`` makes the CLI ask for a
purpose there too).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord
from faceledger.config import FaceSelection
from faceledger.errors import NotFound
from faceledger.gallery.workspace import Workspace
from faceledger.match import decide
from faceledger.match.verify import check_fmr
from faceledger.pipeline import ImageInput, VerifyResult
from faceledger.types import Decision, FaceResult


@dataclass(frozen=True)
class VerifyPair:
    a: ImageInput
    b: ImageInput
    fmr: float | None = None
    purpose: str | None = None
    case_ref: str | None = None
    selection: FaceSelection | None = None


@dataclass(frozen=True)
class PairVerified:
    result: VerifyResult
    audit_seq: int


@dataclass(frozen=True)
class VerifySubject:
    gallery: str
    subject: str
    image: ImageInput
    fmr: float | None = None
    purpose: str | None = None
    case_ref: str | None = None


@dataclass(frozen=True)
class SubjectVerified:
    decision: Decision
    face: FaceResult
    template_id: int
    audit_seq: int


def _purpose(purpose: str | None, case_ref: str | None) -> tuple[str, str]:
    """Every audited comparison against a person's face states why (issue #19)."""
    return require_purpose(purpose, case_ref)


def _record(
    actor: User,
    decision: Decision,
    why: tuple[str, str],
    *,
    probe_sha256: str,
    galleries: tuple[str, ...] = (),
    details: dict[str, str | int],
) -> AuditRecord:
    return AuditRecord(
        operation=AuditOp.VERIFY,
        actor=actor.id,
        purpose=why[0],
        case_ref=why[1],
        galleries=galleries,
        model_id=decision.model_id,
        threshold=round(decision.threshold, 6),
        target_fmr=decision.target_fmr,
        probe_sha256=probe_sha256,
        details={
            **details,
            "score": round(decision.score, 6),
            "fmr": decision.fmr.value,
            "outcome": decision.outcome.value,
        },
    )


def verify_pair(ws: Workspace, actor: User, req: VerifyPair) -> PairVerified:
    """Are the faces of A and B the same person at the target FMR? Audited."""
    authorize(actor, Operation.VERIFY)
    why = _purpose(req.purpose, req.case_ref)
    if req.fmr is not None:
        check_fmr(req.fmr)
    engine = ws.engine
    img_a, img_b = engine.load(req.a), engine.load(req.b)
    result = engine.verify(img_a, img_b, fmr=req.fmr, selection=req.selection)
    entry = ws.audit.append(
        _record(
            actor,
            result.decision,
            why,
            probe_sha256=img_a.sha256,
            details={
                "reference_sha256": img_b.sha256,
                "faces_in_probe": result.a.faces_in_image,
                "faces_in_reference": result.b.faces_in_image,
            },
        )
    )
    return PairVerified(result, entry.seq)


def verify_subject(ws: Workspace, actor: User, req: VerifySubject) -> SubjectVerified:
    """Is the face in the image the enrolled subject (its best-matching template)? Audited."""
    authorize(actor, Operation.VERIFY, req.gallery)
    g = ws.store.get_gallery_by_name(req.gallery)
    why = _purpose(req.purpose, req.case_ref)
    target = req.fmr if req.fmr is not None else ws.settings.default_fmr
    check_fmr(target)
    found = ws.store.find_subject(g.id, req.subject)
    if found is None:
        raise NotFound(f"no subject {req.subject!r} in gallery {g.name!r}")
    stored = ws.store.get_templates([t.id for t in ws.store.list_templates(found.id)])
    if not stored:
        raise NotFound(f"subject {req.subject!r} has no template")
    engine = ws.engine_for(g)
    img = engine.load(req.image)
    face = engine.embed(img)
    probe = face.template
    assert probe is not None
    best = max(stored.values(), key=lambda t: (probe.similarity(t.template), -t.id))
    dec = decide(probe, best.template, engine.card, target)
    entry = ws.audit.append(
        _record(
            actor,
            dec,
            why,
            galleries=(g.name,),
            probe_sha256=img.sha256,
            details={
                "subject": found.external_id,
                "template_id": best.id,
                "faces_in_probe": face.faces_in_image,
            },
        )
    )
    return SubjectVerified(dec, face, best.id, entry.seq)
