"""What the review tables say about searches over a period, per organisation and agreement.

Each search recorded in ``[start, end)`` that concerns the organisation asked about (it made
the search, or owns a gallery searched) or that used the agreement asked about is returned
with the galleries in scope: for an organisation, the galleries it owns and, for its own
searches, every gallery searched; for an agreement, the gallery it shares. Each gallery use
carries the status of its leads and the time of their first decision, so that reports can
split the figures by role (owner, requester), requesting organisation and agreement.
Searches recorded before organisations existed are the default organisation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from faceledger.audit.log import AuditLog
from faceledger.audit.records import format_timestamp
from faceledger.audit.sqlutil import translate_errors
from faceledger.errors import NotFound
from faceledger.review import schema
from faceledger.review.book import Reviews, concerning
from faceledger.review.model import LeadStatus, SearchRecord


@dataclass(frozen=True)
class GalleryUse:
    """One gallery of one search: whose, under which agreement, and its leads' outcomes."""

    gallery: str
    owner_org: str
    agreement_id: str | None
    statuses: tuple[LeadStatus, ...]
    """The status of each lead the search got from this gallery, in rank order."""
    first_decision: datetime | None
    """When a reviewer first decided one of those leads (None: not yet)."""


@dataclass(frozen=True)
class SearchFacts:
    search_id: str
    created_at: datetime
    requester_org: str
    audit_seq: int
    faces: int
    """Faces the search's audit entry searched (``details["faces"]``, else 1)."""
    uses: tuple[GalleryUse, ...]
    """The galleries in scope (at least one)."""


def _concerns(org: str | None, agreement_id: str | None) -> sa.ColumnElement[bool]:
    t, sg = schema.searches, schema.search_galleries
    cond: sa.ColumnElement[bool] = sa.true() if org is None else concerning(org)
    if agreement_id is not None:
        cond = sa.and_(
            cond,
            t.c.search_id.in_(sa.select(sg.c.search_id).where(sg.c.agreement_id == agreement_id)),
        )
    return cond


def search_ids(
    audit: AuditLog,
    start: datetime,
    end: datetime,
    *,
    org: str | None = None,
    agreement_id: str | None = None,
) -> list[str]:
    """Searches recorded in ``[start, end)`` concerning ``org`` and using ``agreement_id``
    (either may be None: any), oldest first."""
    t = schema.searches
    query = (
        sa.select(t.c.search_id)
        .where(
            t.c.created_at >= format_timestamp(start),
            t.c.created_at < format_timestamp(end),
            _concerns(org, agreement_id),
        )
        .order_by(t.c.created_at, t.c.audit_seq, t.c.search_id)
    )
    with translate_errors("read searches"), audit.engine.connect() as conn:
        found = [str(x) for x in conn.execute(query).scalars()]
        conn.rollback()
    return found


def search_facts(
    reviews: Reviews,
    audit: AuditLog,
    start: datetime,
    end: datetime,
    *,
    org: str | None = None,
    agreement_id: str | None = None,
) -> list[SearchFacts]:
    """The searches of :func:`search_ids` with their galleries in scope."""
    faces: dict[int, int] = {}
    found: list[SearchFacts] = []
    for search_id in search_ids(audit, start, end, org=org, agreement_id=agreement_id):
        rec = reviews.search(search_id)
        uses = tuple(
            _use(rec, g)
            for g in rec.galleries
            if _in_scope(rec, g, org=org, agreement_id=agreement_id)
        )
        if not uses:
            continue
        if rec.audit_seq not in faces:
            faces[rec.audit_seq] = _faces(audit, rec.audit_seq)
        found.append(
            SearchFacts(
                rec.search_id,
                rec.created_at,
                rec.requester_org,
                rec.audit_seq,
                faces[rec.audit_seq],
                uses,
            )
        )
    return found


def _in_scope(
    rec: SearchRecord, gallery: str, *, org: str | None, agreement_id: str | None
) -> bool:
    terms = rec.terms(gallery)
    if agreement_id is not None and terms.agreement_id != agreement_id:
        return False
    return org is None or org in (terms.owner_org, rec.requester_org)


def _use(rec: SearchRecord, gallery: str) -> GalleryUse:
    terms = rec.terms(gallery)
    states = [s for s in rec.leads if s.lead.gallery == gallery]
    times = [d.decided_at for s in states for d in s.decisions]
    return GalleryUse(
        gallery,
        terms.owner_org,
        terms.agreement_id,
        tuple(s.status for s in states),
        min(times) if times else None,
    )


def _faces(audit: AuditLog, seq: int) -> int:
    try:
        value = audit.get(seq).record.details.get("faces")
    except NotFound:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 1
