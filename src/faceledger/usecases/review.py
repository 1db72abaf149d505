"""Human review of searches: who may read which search, the review queue, verdicts, and the
probe a reviewer looks at.

The searcher and auditors see a whole search; a reviewer sees the leads from the galleries
they review (reviewers of a shared gallery see only theirs); other searchers see nothing.
A searcher may not review their own search; under the two-person rule a lead is confirmed
only by two reviewers (``faceledger.review``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from faceledger.access import Operation, User, authorize, is_allowed
from faceledger.access.names import same_person
from faceledger.audit import AuditRecord
from faceledger.errors import PermissionDenied
from faceledger.gallery.images import StoredImage
from faceledger.gallery.workspace import Workspace
from faceledger.review import REDACTED_SUBJECT, Judgement, LeadState, SearchRecord, Verdict
from faceledger.usecases.sharing import require_live_agreement

OP_PROBE_VIEW = "probe_view"


@dataclass(frozen=True)
class VisibleSearch:
    record: SearchRecord
    galleries: frozenset[str] | None
    """The galleries whose leads the reader may see (None: every lead)."""
    blind: frozenset[int] = frozenset()
    """Leads the reader is to judge blind: until they record a first look, nothing that
    could sway them is shown (score, FMR, status, other reviewers' looks and verdicts)."""


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
    and the auditors of its organisation see all of it; the auditors of another organisation
    whose gallery it searched see that gallery's part; a reviewer sees the leads of the
    galleries they review; another searcher sees nothing of it. Leads of a redacted gallery
    name no subject for anyone outside its owner until the owner releases them."""
    authorize(actor, Operation.READ_SEARCHES)
    found = _visible(actor, ws.reviews.search(search_id), ws.reviews.blind_review)
    if found is None:
        raise PermissionDenied(f"user {actor.id!r} may not read search {search_id}")
    return found


def _visible(actor: User, record: SearchRecord, blind_review: bool) -> VisibleSearch | None:
    auditor = is_allowed(actor, Operation.AUDIT_READ)
    if same_person(actor.id, record.actor) or (auditor and _of_org(actor, record.requester_org)):
        return VisibleSearch(masked(record, actor), None)
    if auditor:
        owned = {g for g in record.galleries if record.owner_of(g) == actor.org}
        if owned:
            return VisibleSearch(_only(record, owned), frozenset(owned))
    galleries = {g for g in record.galleries if is_allowed(actor, Operation.REVIEW, g)}
    if not galleries:
        return None
    shown = masked(_only(record, galleries), actor)
    return VisibleSearch(shown, frozenset(galleries), _blind(actor, shown, blind_review))


def _blind(actor: User, record: SearchRecord, blind_review: bool) -> frozenset[int]:
    """The leads of ``record`` that ``actor``, a reviewer, has yet to look at blind."""
    if not blind_review:
        return frozenset()
    return frozenset(
        s.rank
        for s in record.leads
        if s.status.open
        and s.looked(actor.id) is None
        and actor.id not in s.current
        and is_allowed(actor, Operation.REVIEW, s.lead.gallery)
    )


def _of_org(actor: User, org: str) -> bool:
    return actor.org is None or actor.org == org


def masked(record: SearchRecord, reader: User) -> SearchRecord:
    """``record`` as ``reader`` may see it: each lead still withheld by its gallery's owner
    shows :data:`REDACTED_SUBJECT` and no template, unless ``reader`` is of the owner."""
    states = tuple(
        dataclasses.replace(
            state,
            lead=dataclasses.replace(state.lead, subject_id=REDACTED_SUBJECT, template_id=None),
        )
        if record.withheld(state) and not _of_org(reader, record.owner_of(state.lead.gallery))
        else state
        for state in record.leads
    )
    return dataclasses.replace(record, leads=states)


def _only(record: SearchRecord, galleries: set[str]) -> SearchRecord:
    """``record`` naming only ``galleries`` (a partner sees nothing of the searcher's others)."""
    return dataclasses.replace(
        record,
        galleries=tuple(g for g in record.galleries if g in galleries),
        leads=tuple(s for s in record.leads if s.lead.gallery in galleries),
        gallery_terms={g: t for g, t in record.gallery_terms.items() if g in galleries},
    )


def list_searches(ws: Workspace, actor: User, *, limit: int, offset: int = 0) -> SearchPage:
    """Searches on record, newest first: for auditors every search their organisation made
    or that searched a gallery it owns (each as :func:`read_search` shows it), else the
    reader's own."""
    authorize(actor, Operation.READ_SEARCHES)
    everyone = is_allowed(actor, Operation.AUDIT_READ)
    found = ws.reviews.searches(
        actor=None if everyone else actor.id,
        org=actor.org if everyone else None,
        limit=offset + limit + 1,
    )
    blind = ws.reviews.blind_review
    page = tuple(
        v
        for v in (_visible(actor, r, blind) for r in found[offset : offset + limit])
        if v is not None
    )
    return SearchPage(page, offset + limit if len(found) > offset + limit else None)


@dataclass(frozen=True)
class QueueFilter:
    gallery: str | None = None
    """Only searches that got a lead awaiting review from this gallery."""
    since: datetime | None = None
    """Only searches made at or after this time."""
    until: datetime | None = None
    """Only searches made before this time (the older ones, waiting longest)."""


def review_queue(
    ws: Workspace,
    actor: User,
    *,
    limit: int,
    offset: int = 0,
    only: QueueFilter | None = None,
) -> SearchPage:
    """Searches by others with leads awaiting ``actor``'s verdict, oldest first, a page at a
    time; each shows the leads of the galleries ``actor`` may review."""
    authorize(actor, Operation.READ_SEARCHES)
    only = only or QueueFilter()
    found = ws.reviews.awaiting_review(
        actor,
        limit=limit + 1,
        offset=offset,
        gallery=only.gallery,
        since=only.since,
        until=only.until,
    )
    items = tuple(
        VisibleSearch(
            shown,
            frozenset(g for g in r.galleries if is_allowed(actor, Operation.REVIEW, g)),
            _blind(actor, shown, ws.reviews.blind_review),
        )
        for r in found[:limit]
        for shown in (masked(r, actor),)
    )
    return SearchPage(items, offset + limit if len(found) > limit else None)


def _agreement_still_live(ws: Workspace, actor: User, search_id: str, rank: int) -> None:
    """Refuse a look or verdict on a lead of another organisation's gallery once its agreement
    has ended (a missing lead is left to the review desk's own NotFound)."""
    record = ws.reviews.search(search_id)
    if rank in {s.rank for s in record.leads}:
        require_live_agreement(ws, actor, record.lead(rank).lead.gallery)


@dataclass(frozen=True)
class FirstLookAt:
    search_id: str
    rank: int
    judgement: Judgement | str


def record_first_look(ws: Workspace, actor: User, req: FirstLookAt) -> LeadState:
    """Record ``actor``'s judgement of a lead's two faces, made before any score was shown
    (audited); afterwards the lead's scores are shown to them and a verdict may follow."""
    _agreement_still_live(ws, actor, req.search_id, req.rank)
    state = ws.reviews.first_look(actor, req.search_id, req.rank, req.judgement)
    return masked(ws.reviews.search(req.search_id), actor).lead(state.rank)


def decide_lead(ws: Workspace, actor: User, req: DecideLead) -> LeadState:
    """Record ``actor``'s verdict on one lead (audited); returns the lead's new state as
    ``actor`` may see it."""
    _agreement_still_live(ws, actor, req.search_id, req.rank)
    state = ws.reviews.decide(actor, req.search_id, req.rank, req.verdict, req.note)
    return masked(ws.reviews.search(req.search_id), actor).lead(state.rank)


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
