"""Typed values of the audit log: what a caller records, the stored entry, the head, a report.

The entry *body* is the canonical JSON object that is hashed (see :mod:`.canonical`); its keys
are listed in :data:`BODY_KEYS` and documented on :class:`AuditRecord`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from faceledger.audit.canonical import Json, parse_json
from faceledger.errors import ChainBroken, InvalidArgument

BODY_VERSION = 1
GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of entry 1."""

_OPERATION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class AuditOp(StrEnum):
    """Operations the engine records (any ``[a-z][a-z0-9_]*`` name is accepted)."""

    SEARCH = "search"
    VIDEO_SEARCH = "video_search"
    """One search of a recorded video: every track searched, the leads, counts of the rest."""
    VIDEO_WATCH_START = "video_watch_start"
    VIDEO_WATCH_STOP = "video_watch_stop"
    VIDEO_ALERT = "video_alert"
    """One track of a live watch that produced candidates."""
    VERIFY = "verify"
    DOCUMENT_CHECK = "document_check"
    """A live face compared with an identity document's portrait, and the document's MRZ
    checked: the decision and reasons, the document number only as a keyed hash."""
    ENROL = "enrol"
    ENROL_BATCH = "enrol_batch"
    """One committed batch of a bulk enrolment job, written in the batch's own transaction."""
    DELETE_SUBJECT = "delete_subject"
    ERASURE_RECEIPT = "erasure_receipt"
    REVIEW = "review"
    RETENTION_PURGE = "retention_purge"
    GALLERY_CREATE = "gallery_create"
    GALLERY_DELETE = "gallery_delete"
    GRANT = "grant"
    REVOKE = "revoke"
    USER_CREATE = "user_create"
    USER_ROLES = "user_roles"
    USER_DEACTIVATE = "user_deactivate"
    USER_REACTIVATE = "user_reactivate"
    PASSWORD_SET = "password_set"
    KEY_ISSUE = "key_issue"
    KEY_REVOKE = "key_revoke"
    ORG_CREATE = "org_create"
    PURPOSE_DEFINE = "purpose_define"
    AGREEMENT_CREATE = "agreement_create"
    AGREEMENT_CHANGE = "agreement_change"
    AGREEMENT_REVOKE = "agreement_revoke"
    AGREEMENT_EXPIRE = "agreement_expire"
    REVIEW_FIRST_LOOK = "review_first_look"
    """A reviewer's judgement of a lead's two faces before any score was shown to them."""
    LEAD_RELEASE = "lead_release"
    """A reviewer of the owning organisation released a redacted lead to the searcher's."""
    CLUSTER = "cluster"
    CLUSTER_REVIEW = "cluster_review"
    """A reviewer merged, split, named or dismissed clusters of a kept set, or undid that."""
    CLUSTER_ENROL = "cluster_enrol"
    """A reviewed cluster of a kept set enrolled as a subject, with its legal basis."""
    CLUSTER_SET_PURGE = "cluster_set_purge"
    """Kept cluster sets past their retention deleted (faces, crops, templates)."""


SEARCH_OPS = frozenset({AuditOp.SEARCH, AuditOp.VIDEO_SEARCH, AuditOp.VIDEO_ALERT})

ACCESS_OPS = frozenset(
    {
        AuditOp.GRANT,
        AuditOp.REVOKE,
        AuditOp.USER_ROLES,
        AuditOp.USER_DEACTIVATE,
        AuditOp.USER_REACTIVATE,
        AuditOp.PASSWORD_SET,
        AuditOp.KEY_REVOKE,
        AuditOp.GALLERY_DELETE,
        AuditOp.ORG_CREATE,
        AuditOp.AGREEMENT_CREATE,
        AuditOp.AGREEMENT_CHANGE,
        AuditOp.AGREEMENT_REVOKE,
        AuditOp.AGREEMENT_EXPIRE,
    }
)
"""Operations that change what a signed-in user may do: each moves the access epoch
(:meth:`AuditLog.access_epoch`), so that every process forgets the users it remembered."""
"""Operations that searched galleries and may name subjects as leads."""


@dataclass(frozen=True)
class Lead:
    """One candidate returned by a search (its rank is its 1-based position in the list)."""

    gallery: str
    subject_id: str
    score: float
    fmr: float | None = None
    """Estimated false-match rate of ``score`` from the model's calibration table."""
    fmr_upper_bound: bool = False
    """True when ``fmr`` is only an upper bound (score beyond every impostor measured)."""
    template_id: int | None = None

    def __post_init__(self) -> None:
        _text("lead gallery", self.gallery)
        _text("lead subject_id", self.subject_id)
        _finite("lead score", self.score)
        if self.fmr is not None:
            _finite("lead fmr", self.fmr)

    def to_json(self, rank: int) -> dict[str, Json]:
        return {
            "rank": rank,
            "gallery": self.gallery,
            "subject_id": self.subject_id,
            "template_id": self.template_id,
            "score": self.score,
            "fmr": self.fmr,
            "fmr_upper_bound": self.fmr_upper_bound,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lead:
        fmr = data["fmr"]
        template_id = data["template_id"]
        return cls(
            gallery=str(data["gallery"]),
            subject_id=str(data["subject_id"]),
            score=float(data["score"]),
            fmr=None if fmr is None else float(fmr),
            fmr_upper_bound=bool(data["fmr_upper_bound"]),
            template_id=None if template_id is None else int(template_id),
        )


@dataclass(frozen=True)
class AuditRecord:
    """What a caller asks to record; the log adds seq, time, chain hash and signature.

    Body keys: ``v`` (format version), ``seq``, ``prev`` (hash of the previous entry), ``ts``
    (UTC, microseconds, ``Z``), ``actor``, ``op``, ``purpose``, ``case_ref``, ``galleries``,
    ``model_id``, ``threshold``, ``target_fmr``, ``target_fpir``, ``probe_sha256``,
    ``probe_image`` (null; logs of earlier builds could hold base64 probe bytes),
    ``candidates`` (list of :meth:`Lead.to_json`), ``details`` (free JSON object), ``signer``
    (hex Ed25519 public key, or null when unsigned).
    """

    operation: str
    actor: str
    purpose: str | None = None
    case_ref: str | None = None
    galleries: tuple[str, ...] = ()
    model_id: str | None = None
    threshold: float | None = None
    target_fmr: float | None = None
    target_fpir: float | None = None
    probe_sha256: str | None = None
    probe_image: bytes | None = field(default=None, repr=False)
    """The probe's bytes: hashed into ``probe_sha256``; kept only if the log is so configured."""
    candidates: tuple[Lead, ...] = ()
    details: Mapping[str, Json] = field(default_factory=dict)

    def __post_init__(self) -> None:  # noqa: C901
        if not isinstance(self.operation, str) or not _OPERATION.match(self.operation):
            raise InvalidArgument(
                f"audit operation must match [a-z][a-z0-9_]*, got {self.operation!r}"
            )
        _text("audit actor", self.actor)
        for name in ("purpose", "case_ref", "model_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"audit {name} must be a string")
        if isinstance(self.galleries, str):
            raise InvalidArgument("audit galleries must be a sequence of names, not a string")
        object.__setattr__(self, "galleries", tuple(self.galleries))
        for g in self.galleries:
            _text("audit gallery", g)
        object.__setattr__(self, "candidates", tuple(self.candidates))
        for c in self.candidates:
            if not isinstance(c, Lead):
                raise InvalidArgument("audit candidates must be Lead values")
        for name in ("threshold", "target_fmr", "target_fpir"):
            value = getattr(self, name)
            if value is not None:
                _finite(f"audit {name}", value)
        if self.probe_image is not None:
            digest = hashlib.sha256(self.probe_image).hexdigest()
            if self.probe_sha256 is not None and self.probe_sha256 != digest:
                raise InvalidArgument("probe_sha256 does not match the probe image given")
            object.__setattr__(self, "probe_sha256", digest)
        if self.probe_sha256 is not None and not _SHA256.match(self.probe_sha256):
            raise InvalidArgument("probe_sha256 must be 64 lowercase hex digits")
        if not isinstance(self.details, Mapping):
            raise InvalidArgument("audit details must be a JSON object")

    def body(
        self, *, seq: int, prev_hash: str, timestamp: datetime, signer: str | None
    ) -> dict[str, Json]:
        """The JSON object that is canonicalised and hashed for this record. Probe bytes are
        never written (only their hash): nothing in a hash chain can be deleted, and a probe
        image must be (retention, erasure); kept probes live in ``gallery.images``."""
        return {
            "v": BODY_VERSION,
            "seq": seq,
            "prev": prev_hash,
            "ts": format_timestamp(timestamp),
            "actor": self.actor,
            "op": str(self.operation),
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "galleries": list(self.galleries),
            "model_id": self.model_id,
            "threshold": self.threshold,
            "target_fmr": self.target_fmr,
            "target_fpir": self.target_fpir,
            "probe_sha256": self.probe_sha256,
            "probe_image": None,
            "candidates": [c.to_json(i + 1) for i, c in enumerate(self.candidates)],
            "details": dict(self.details),
            "signer": signer,
        }


BODY_KEYS = frozenset(
    (
        "v", "seq", "prev", "ts", "actor", "op", "purpose", "case_ref", "galleries", "model_id",
        "threshold", "target_fmr", "target_fpir", "probe_sha256", "probe_image", "candidates",
        "details", "signer",
    )
)  # fmt: skip
"""Exactly the keys of an entry body (checked on verification)."""


@dataclass(frozen=True)
class AuditEntry:
    """One stored, chained entry."""

    seq: int
    timestamp: datetime
    record: AuditRecord
    prev_hash: str
    hash: str
    signature: str | None = None
    signer: str | None = None

    @classmethod
    def from_stored(cls, body_text: str, hash_hex: str, signature: str | None) -> AuditEntry:
        """Rebuild an entry from its stored canonical body (raises ``ValueError`` if malformed)."""
        body = parse_json(body_text)
        return entry_from_body(body, hash_hex, signature)


def entry_from_body(body: Any, hash_hex: str, signature: str | None) -> AuditEntry:
    """Rebuild an entry from its parsed body (raises ``ValueError``/``KeyError`` if malformed)."""
    if not isinstance(body, dict) or set(body) != BODY_KEYS:
        raise ValueError("entry body has unexpected keys")
    if body["v"] != BODY_VERSION:
        raise ValueError(f"unknown entry format version {body['v']!r}")
    image = body["probe_image"]
    try:
        record = AuditRecord(
            operation=body["op"],
            actor=body["actor"],
            purpose=body["purpose"],
            case_ref=body["case_ref"],
            galleries=tuple(body["galleries"]),
            model_id=body["model_id"],
            threshold=_opt_float(body["threshold"]),
            target_fmr=_opt_float(body["target_fmr"]),
            target_fpir=_opt_float(body["target_fpir"]),
            probe_sha256=body["probe_sha256"],
            probe_image=None if image is None else base64.b64decode(image, validate=True),
            candidates=tuple(Lead.from_json(c) for c in body["candidates"]),
            details=dict(body["details"]),
        )
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None
    return AuditEntry(
        seq=int(body["seq"]),
        timestamp=parse_timestamp(body["ts"]),
        record=record,
        prev_hash=str(body["prev"]),
        hash=hash_hex,
        signature=signature,
        signer=body["signer"],
    )


@dataclass(frozen=True)
class ChainHead:
    """The last entry's position and hash, optionally signed: the anchor against truncation.

    Keep a copy outside the database (``to_json``) and pass it to ``verify(anchor=...)`` to
    also detect a rollback by someone able to rewrite the whole database.
    """

    seq: int
    hash: str
    signature: str | None = None
    signer: str | None = None

    def to_json(self) -> dict[str, Json]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "signature": self.signature,
            "signer": self.signer,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainHead:
        try:
            seq = int(data["seq"])
            hash_hex = str(data["hash"])
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("a chain head needs an integer 'seq' and a 'hash'") from None
        if seq < 0 or not (hash_hex == GENESIS_HASH or _SHA256.match(hash_hex)):
            raise InvalidArgument("malformed chain head")
        signature = data.get("signature")
        signer = data.get("signer")
        return cls(
            seq,
            hash_hex,
            None if signature is None else str(signature),
            None if signer is None else str(signer),
        )


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of verifying the chain.

    ``first_bad_position`` is the seq (1-based) of the first entry that fails, or, for
    truncation, the seq of the first missing entry; None when ``ok``.
    """

    ok: bool
    entries: int
    """Entries read from the log."""
    first_bad_position: int | None = None
    reason: str | None = None
    head: ChainHead | None = None
    signed_entries: int = 0
    withheld_entries: int = 0
    """Stubs of entries an organisation's export withholds (linked and signature-checked)."""

    def raise_if_broken(self) -> None:
        if not self.ok:
            raise ChainBroken(self.reason or "audit chain broken", self.first_bad_position or 0)


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds, ``Z`` suffix: fixed width, so text order is time order."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgument("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z") or len(text) != 27:
        raise ValueError(f"malformed audit timestamp {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty string")
    if len(value) > 256 or any(ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"{name} must be at most 256 printable characters")


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
