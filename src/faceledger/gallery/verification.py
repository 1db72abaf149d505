"""Audited 1:1 verification: the purpose policy, the decision, and an audit entry."""

from __future__ import annotations

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import PurposePolicy
from faceledger.audit import AuditOp, AuditRecord
from faceledger.config import FaceSelection
from faceledger.gallery.workspace import Workspace
from faceledger.pipeline import ImageInput, VerifyResult


def audited_verify(
    ws: Workspace,
    actor: User,
    a: ImageInput,
    b: ImageInput,
    *,
    fmr: float | None = None,
    purpose: str | None = None,
    case_ref: str | None = None,
    selection: FaceSelection | None = None,
) -> VerifyResult:
    """Verify A against B and log who did it, why, and the decision (never the images)."""
    purpose, case_ref = PurposePolicy(ws.settings.verify_requires_purpose).check(
        Operation.VERIFY, purpose, case_ref
    )
    authorize(actor, Operation.VERIFY)
    engine = ws.engine
    img_a, img_b = engine.load(a), engine.load(b)
    result = engine.verify(img_a, img_b, fmr=fmr, selection=selection)
    d = result.decision
    ws.audit.append(
        AuditRecord(
            operation=AuditOp.VERIFY,
            actor=actor.id,
            purpose=purpose,
            case_ref=case_ref,
            model_id=d.model_id,
            threshold=round(d.threshold, 6),
            target_fmr=d.target_fmr,
            probe_sha256=img_a.sha256,
            details={
                "reference_sha256": img_b.sha256,
                "outcome": d.outcome.value,
                "score": round(d.score, 6),
                "estimated_fmr": d.fmr.value,
            },
        )
    )
    return result
