"""Identity documents: read one (MRZ and portrait), and check a live face against it.

``read_document`` is a pure reading of an image the caller holds: nothing is stored and it is
not audited (like detecting faces). ``check_document`` compares a person with their document,
as border gates and field apps do; it states a purpose and a case, writes one audit entry, and
keeps nothing: not the images, not the template, not the names. The document number enters
the audit entry only as a keyed hash (HMAC under a secret kept in the store), so that an
investigator holding a number can find its checks while someone reading the log cannot list
the numbers; ``hash_document_number=False`` records it in clear where the operator's rules
require that.

The check gives one decision with its reasons, never an identification: ``pass`` only when the
MRZ is valid, the document has not expired, the portrait is good enough to compare and the
live face matches it at the target false-match rate; every other case is ``refer`` — an
officer examines the person and the document.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord
from faceledger.document.ocr import MrzReading, read_mrz
from faceledger.document.portrait import Portrait, find_portrait
from faceledger.errors import NoMrz, UnreadableMrz
from faceledger.gallery.workspace import Workspace
from faceledger.match import decide
from faceledger.match.verify import check_fmr
from faceledger.pipeline import ImageInput
from faceledger.store.secrets import keyed_hash
from faceledger.types import Decision, DecodedImage, FaceResult, Outcome

DOCUMENT_NUMBER_SECRET = "document_number"
"""Name of the store secret the document numbers of audit entries are hashed under."""


class CheckReason(StrEnum):
    MRZ_INVALID = "mrz_invalid"
    EXPIRED = "expired"
    NO_PORTRAIT = "no_portrait"
    LOW_QUALITY = "low_quality"
    NO_MATCH = "no_match"
    MATCH = "match"


@dataclass(frozen=True)
class ReadDocument:
    image: ImageInput
    today: datetime.date | None = None
    """The day expiry is judged against (default: the workspace clock's)."""


@dataclass(frozen=True)
class DocumentRead:
    image_sha256: str
    reading: MrzReading
    portrait: Portrait | None
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "image_sha256": self.image_sha256,
            "mrz": _mrz_json(self.reading),
            "portrait": None if self.portrait is None else self.portrait.as_json(),
            "seconds": round(self.seconds, 3),
        }


def read_document(ws: Workspace, actor: User, req: ReadDocument) -> DocumentRead:
    """The document's MRZ (located, read, checked, parsed) and its portrait. Raises
    ``NoMrz``, ``AmbiguousMrz`` or ``UnreadableMrz`` when there is no single readable zone."""
    authorize(actor, Operation.DETECT)
    started = time.perf_counter()
    img = ws.engine.load(req.image)
    reading = read_mrz(img.pixels, today=_today(ws, req.today))
    portrait = _portrait(ws, img, reading)
    return DocumentRead(img.sha256, reading, portrait, time.perf_counter() - started)


@dataclass(frozen=True)
class CheckDocument:
    document: ImageInput
    live: ImageInput
    purpose: str | None
    case_ref: str | None
    fmr: float | None = None
    hash_document_number: bool = True
    today: datetime.date | None = None


@dataclass(frozen=True)
class DocumentChecked:
    document_sha256: str
    live_sha256: str
    reading: MrzReading | None
    """None when the document has no readable MRZ (``mrz_error`` says why)."""
    mrz_error: str | None
    portrait: Portrait | None
    live: FaceResult
    comparison: Decision | None
    """None when there was no portrait to compare with."""
    reasons: tuple[CheckReason, ...]
    audit_seq: int
    seconds: float

    @property
    def decision(self) -> str:
        return decision_of(self.reasons)

    def as_json(self) -> dict[str, Any]:
        q = self.live.quality
        return {
            "decision": self.decision,
            "reasons": [r.value for r in self.reasons],
            "mrz": None if self.reading is None else _mrz_json(self.reading),
            "mrz_error": self.mrz_error,
            "portrait": None if self.portrait is None else self.portrait.as_json(),
            "live": {
                "quality": {"score": round(q.score, 1), "passes": q.passes, "flags": list(q.flags)}
            },
            "comparison": None if self.comparison is None else _comparison_json(self.comparison),
            "document_sha256": self.document_sha256,
            "live_sha256": self.live_sha256,
            "audit_seq": self.audit_seq,
            "seconds": round(self.seconds, 3),
        }


def check_document(ws: Workspace, actor: User, req: CheckDocument) -> DocumentChecked:
    """Read the document, compare its portrait with the live face at the target FMR, audit."""
    authorize(actor, Operation.VERIFY)
    purpose, case_ref = require_purpose(req.purpose, req.case_ref)
    target = req.fmr if req.fmr is not None else ws.settings.default_fmr
    check_fmr(target)
    started = time.perf_counter()
    engine = ws.engine
    doc, live_img = engine.load(req.document), engine.load(req.live)
    reading, mrz_error = _read_or_why(doc, _today(ws, req.today))
    portrait = _portrait(ws, doc, reading)
    live = engine.embed(live_img)
    comparison = None
    if portrait is not None:
        assert portrait.face.template is not None and live.template is not None
        comparison = decide(portrait.face.template, live.template, engine.card, target)
    reasons = _reasons(reading, portrait, live, comparison)
    record = AuditRecord(
        operation=AuditOp.DOCUMENT_CHECK,
        actor=actor.id,
        purpose=purpose,
        case_ref=case_ref,
        model_id=engine.card.id,
        target_fmr=target,
        threshold=None if comparison is None else round(comparison.threshold, 6),
        probe_sha256=live_img.sha256,
        details=_audit_details(ws, req, doc, reading, mrz_error, portrait, comparison, reasons),
    )
    entry = ws.audit.append(record)
    return DocumentChecked(
        doc.sha256,
        live_img.sha256,
        reading,
        mrz_error,
        portrait,
        live,
        comparison,
        reasons,
        entry.seq,
        time.perf_counter() - started,
    )


def decision_of(reasons: tuple[CheckReason, ...]) -> str:
    """``pass`` when the only reason is a match; ``refer`` (to an officer) otherwise."""
    return "pass" if reasons == (CheckReason.MATCH,) else "refer"


def _portrait(ws: Workspace, doc: DecodedImage, reading: MrzReading | None) -> Portrait | None:
    """The portrait outside the MRZ zone, the document turned upright by the zone's angle
    (as photographed when there is no MRZ to go by)."""
    if reading is None:
        return find_portrait(ws.engine, doc)
    return find_portrait(ws.engine, doc, exclude=reading.box, text_angle=reading.angle)


def _read_or_why(doc: DecodedImage, today: datetime.date) -> tuple[MrzReading | None, str | None]:
    """The MRZ, or why there is none to check (the face comparison goes on without it)."""
    try:
        return read_mrz(doc.pixels, today=today), None
    except (NoMrz, UnreadableMrz) as exc:
        return None, exc.code


def _reasons(
    reading: MrzReading | None,
    portrait: Portrait | None,
    live: FaceResult,
    comparison: Decision | None,
) -> tuple[CheckReason, ...]:
    out: list[CheckReason] = []
    if reading is None or not reading.result.valid:
        out.append(CheckReason.MRZ_INVALID)
    if reading is not None and reading.result.expired:
        out.append(CheckReason.EXPIRED)
    if portrait is None:
        out.append(CheckReason.NO_PORTRAIT)
    elif portrait.small or not live.quality.passes:
        out.append(CheckReason.LOW_QUALITY)
    if comparison is not None:
        matched = comparison.outcome is Outcome.MATCH
        out.append(CheckReason.MATCH if matched else CheckReason.NO_MATCH)
    return tuple(out)


def _audit_details(
    ws: Workspace,
    req: CheckDocument,
    doc: DecodedImage,
    reading: MrzReading | None,
    mrz_error: str | None,
    portrait: Portrait | None,
    comparison: Decision | None,
    reasons: tuple[CheckReason, ...],
) -> dict[str, Any]:
    """What the entry says of the check: hashes and outcomes, no names, no images."""
    details: dict[str, Any] = {
        "document_sha256": doc.sha256,
        "decision": decision_of(reasons),
        "reasons": [r.value for r in reasons],
        "mrz_error": mrz_error,
        "portrait_quality": None if portrait is None else round(portrait.face.quality.score, 1),
        "portrait_small": None if portrait is None else portrait.small,
    }
    if comparison is not None:
        details |= _comparison_json(comparison)
    if reading is not None:
        r = reading.result
        details["mrz"] = {
            "format": r.format.value,
            "valid": r.valid,
            "expired": r.expired,
            "issuing_state": r.fields.issuing_state,
            "expiry_date": r.expiry_date_iso,
            "failed_checks": [c.name for c in r.checks if not c.ok],
            **_document_number(ws, req, r.fields.issuing_state, r.fields.document_number),
        }
    return details


def _document_number(ws: Workspace, req: CheckDocument, state: str, number: str) -> dict[str, str]:
    if not req.hash_document_number:
        return {"document_number": number}
    return {"document_number_hmac": document_number_hmac(ws, state, number)}


def document_number_hmac(ws: Workspace, issuing_state: str, document_number: str) -> str:
    """The hash a document check records for this document: how an investigator holding the
    number finds its entries in the audit log."""
    return keyed_hash(ws.db, DOCUMENT_NUMBER_SECRET, f"{issuing_state}:{document_number}")


def _mrz_json(reading: MrzReading) -> dict[str, Any]:
    """The MRZ as read (zone, seconds) and which of its fields no check digit protects."""
    out: dict[str, Any] = dict(reading.as_json())
    out["unchecked_fields"] = sorted(reading.result.unchecked_fields)
    return out


def _comparison_json(d: Decision) -> dict[str, Any]:
    return {
        "outcome": d.outcome.value,
        "score": round(d.score, 6),
        "fmr": d.fmr.value,
        "fmr_upper_bound": d.fmr.upper_bound,
        "target_fmr": d.target_fmr,
        "threshold": round(d.threshold, 6),
    }


def _today(ws: Workspace, today: datetime.date | None) -> datetime.date:
    return today if today is not None else ws.clock().date()
