"""Human review of searches: who may read which search, the review queue, verdicts, and the
probe a reviewer looks at.

The searcher and auditors see a whole search; a reviewer sees the leads from the galleries
they review (reviewers of a shared gallery see only theirs); other searchers see nothing.
A searcher may not review their own search; under the two-person rule a lead is confirmed
only by two reviewers (``faceledger.review``).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access import Operation, User, authorize, is_allowed
from faceledger.audit import AuditRecord
from faceledger.errors import PermissionDenied
from faceledger.gallery.images import StoredImage
from faceledger.gallery.workspace import Workspace
from faceledger.review import LeadState, SearchRecord, Verdict

OP_PROBE_VIEW = "probe_view"


@dataclass(frozen=True)
class VisibleSearch:
    record: SearchRecord
    galleries: frozenset[str] | None
    """The galleries whose leads the reader may see (None: every lead)."""


@dataclass(frozen=True)
class SearchPage:
    items: tuple[VisibleSearch, ...]
    next_offset: int | None
    """Offset of the next page; None on the last page."""


@dataclass(frozen=True)
class DecideLead:
    search_id: str
    rank: int
    verdict: Verdict | str
    note: str


def read_search(ws: Workspace, actor: User, search_id: str) -> VisibleSearch:
    """A search ``actor`` may read, with the galleries whose leads they may see: its searcher
    and auditors see all of it; a reviewer sees the leads of the galleries they review;
    another searcher sees nothing of it."""
    authorize(actor, Operation.READ_SEARCHES)
    record = ws.reviews.search(search_id)
    if actor.id == record.actor or is_allowed(actor, Operation.AUDIT_READ):
        return VisibleSearch(record, None)
    galleries = {g for g in record.galleries if is_allowed(actor, Operation.REVIEW, g)}
    if not galleries:
        raise PermissionDenied(f"user {actor.id!r} may not read search {search_id}")
    return VisibleSearch(record, frozenset(galleries))


def list_searches(ws: Workspace, actor: User, *, limit: int, offset: int = 0) -> SearchPage:
    """Searches on record, newest first: every search for auditors, else the reader's own."""
    authorize(actor, Operation.READ_SEARCHES)
    everyone = is_allowed(actor, Operation.AUDIT_READ)
    found = ws.reviews.searches(actor=None if everyone else actor.id, limit=offset + limit + 1)
    page = tuple(VisibleSearch(r, None) for r in found[offset : offset + limit])
    return SearchPage(page, offset + limit if len(found) > offset + limit else None)


def review_queue(ws: Workspace, actor: User, *, limit: int, offset: int = 0) -> SearchPage:
    """Searches by others with leads awaiting ``actor``'s verdict, oldest first, a page at a
    time; each shows the leads of the galleries ``actor`` may review."""
    authorize(actor, Operation.READ_SEARCHES)
    found = ws.reviews.awaiting_review(actor, limit=limit + 1, offset=offset)
    items = tuple(
        VisibleSearch(
            r, frozenset(g for g in r.galleries if is_allowed(actor, Operation.REVIEW, g))
        )
        for r in found[:limit]
    )
    return SearchPage(items, offset + limit if len(found) > limit else None)


def decide_lead(ws: Workspace, actor: User, req: DecideLead) -> LeadState:
    """Record ``actor``'s verdict on one lead (audited); returns the lead's new state."""
    return ws.reviews.decide(actor, req.search_id, req.rank, req.verdict, req.note)


def probe_image(ws: Workspace, actor: User, search_id: str) -> StoredImage:
    """The probe of a search: for its searcher, and reviewers of any gallery it searched.
    Each view is audited when ``Settings.audit_image_views`` says so."""
    authorize(actor, Operation.READ_SEARCHES)
    record = ws.reviews.search(search_id)
    allowed = actor.id == record.actor or any(
        is_allowed(actor, Operation.REVIEW, g) for g in record.galleries
    )
    if not allowed:
        raise PermissionDenied(f"user {actor.id!r} may not see the probe of search {search_id}")
    image = ws.images.get_probe(search_id)
    if ws.settings.audit_image_views:
        ws.audit.append(
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
