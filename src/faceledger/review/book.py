"""Human review of search results: record each search's leads, take reviewers' decisions.

A search and its audit entry are written in one transaction, and so is every decision and its
audit entry. A searcher may not review their own search; with the two-person rule (on by
default) a lead is confirmed only when two different reviewers confirm it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from faceledger.access.names import LOCAL_PREFIX, own_names, same_person
from faceledger.access.orgs import Organisations
from faceledger.access.policy import DEFAULT_ORG, Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit.log import AuditLog
from faceledger.audit.records import AuditOp, AuditRecord, Lead, format_timestamp, parse_timestamp
from faceledger.audit.sqlutil import create_tables, translate_errors
from faceledger.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from faceledger.review import schema
from faceledger.review.model import (
    FirstLook,
    GalleryTerms,
    Judgement,
    LeadState,
    LeadStatus,
    Release,
    ReviewDecision,
    SearchRecord,
    Verdict,
    lead_status,
)

MAX_NOTE_CHARS = 4000
ERASED_SUBJECT = "\x1ferased"
"""What an erased subject's leads hold instead of its id: no subject id can be this (ids have
no control characters); shown as :data:`ERASED_SHOWN`."""
ERASED_SHOWN = "[erased]"


class Reviews:
    """The review desk; its tables live on the audit log's engine."""

    def __init__(
        self, audit: AuditLog, *, two_person_rule: bool = True, blind_review: bool = False
    ) -> None:
        self._audit = audit
        self._engine = audit.engine
        self.two_person_rule = two_person_rule
        self.blind_review = blind_review
        """A verdict needs the reviewer's first look, taken before any score was shown."""
        create_tables(self._engine, schema.metadata)

    def record_search(
        self,
        actor: User,
        record: AuditRecord,
        *,
        leads: Sequence[Lead] | None = None,
        terms: Mapping[str, GalleryTerms] | None = None,
        lead_faces: Sequence[int] | None = None,
    ) -> SearchRecord:
        """Audit a 1:N search and keep its leads for review.

        ``record`` is the search's audit record (operation ``search``, ``actor`` = the user,
        ``candidates`` = the leads in rank order). Purpose and case reference are required,
        and the user must be allowed to search every gallery named. ``leads`` are the leads
        the reviewers work on when the record's are redacted (same galleries, same order);
        ``terms`` how each gallery was searched (its owner's agreement, redaction);
        ``lead_faces`` the probe face of each lead, in order.
        """
        if record.operation != AuditOp.SEARCH:
            raise InvalidArgument("record_search() takes a record of operation 'search'")
        search_id = uuid.uuid4().hex
        details = dict(record.details)
        details["search_id"] = search_id
        record = dataclasses.replace(record, details=details)
        kept = record.candidates if leads is None else tuple(leads)
        if [x.gallery for x in kept] != [x.gallery for x in record.candidates]:
            raise InvalidArgument("the leads kept are not the record's leads")
        if lead_faces is not None and len(lead_faces) != len(kept):
            raise InvalidArgument("one probe face per lead")
        with self._audit.writing() as conn:
            _, (found,) = self._record(conn, actor, record, [(search_id, kept)], terms)
            if lead_faces:
                conn.execute(
                    sa.insert(schema.lead_faces),
                    [
                        {"search_id": search_id, "rank": rank, "face_index": int(face)}
                        for rank, face in enumerate(lead_faces, start=1)
                    ],
                )
                found = self._load(conn, search_id)
            return found

    def record_video_search(
        self,
        actor: User,
        record: AuditRecord,
        tracks: Sequence[Sequence[Lead]],
        *,
        terms: Mapping[str, GalleryTerms] | None = None,
    ) -> tuple[int, list[SearchRecord]]:
        """Audit a video search (or one live alert) in ONE entry and keep each lead track's
        leads for review as a search of its own (they share the entry's ``audit_seq``).

        ``record.candidates`` must be the tracks' leads concatenated in order; the entry's
        details get ``track_search_ids`` (one per track given). Returns the entry's sequence
        number and the tracks' review records.
        """
        if record.operation not in (AuditOp.VIDEO_SEARCH, AuditOp.VIDEO_ALERT):
            raise InvalidArgument("record_video_search() takes a video_search/video_alert record")
        if tuple(lead for t in tracks for lead in t) != record.candidates:
            raise InvalidArgument("the record's candidates are not the tracks' leads in order")
        if any(not t for t in tracks):
            raise InvalidArgument("a lead track has at least one lead")
        ids = [uuid.uuid4().hex for _ in tracks]
        details = dict(record.details)
        details["track_search_ids"] = list(ids)
        record = dataclasses.replace(record, details=details)
        with self._audit.writing() as conn:
            return self._record(conn, actor, record, list(zip(ids, tracks, strict=True)), terms)

    def _record(
        self,
        conn: sa.Connection,
        actor: User,
        record: AuditRecord,
        groups: Sequence[tuple[str, Sequence[Lead]]],
        terms: Mapping[str, GalleryTerms] | None = None,
    ) -> tuple[int, list[SearchRecord]]:
        """Check and append ``record``, then one review search per group of leads."""
        if record.actor != actor.id:
            raise InvalidArgument("the search record's actor is not the user given")
        purpose, case_ref = require_purpose(record.purpose, record.case_ref)
        if not record.galleries:
            raise InvalidArgument("a search names at least one gallery")
        for gallery in record.galleries:
            authorize(actor, Operation.SEARCH, gallery)
        for lead in record.candidates:
            if lead.gallery not in record.galleries:
                raise InvalidArgument(f"lead from gallery {lead.gallery!r}, which was not searched")
        record = dataclasses.replace(record, purpose=purpose, case_ref=case_ref)
        entry = self._audit.append(record, connection=conn)
        used = {
            g: (terms or {}).get(g) or GalleryTerms(Organisations.owner_in(conn, g))
            for g in record.galleries
        }
        requester = actor.org or DEFAULT_ORG
        for search_id, leads in groups:
            conn.execute(
                sa.insert(schema.searches).values(
                    search_id=search_id,
                    created_at=format_timestamp(entry.timestamp),
                    actor=actor.id,
                    purpose=purpose,
                    case_ref=case_ref,
                    galleries=json.dumps(list(record.galleries)),
                    model_id=record.model_id,
                    audit_seq=entry.seq,
                )
            )
            conn.execute(
                sa.insert(schema.search_galleries),
                [
                    {
                        "search_id": search_id,
                        "gallery": g,
                        "owner_org": t.owner_org,
                        "requester_org": requester,
                        "agreement_id": t.agreement_id,
                        "redacted": t.redacted,
                    }
                    for g, t in used.items()
                ],
            )
            if leads:
                conn.execute(
                    sa.insert(schema.leads),
                    [
                        {
                            "search_id": search_id,
                            "rank": rank,
                            "gallery": lead.gallery,
                            "subject_id": lead.subject_id,
                            "template_id": lead.template_id,
                            "score": lead.score,
                            "fmr": lead.fmr,
                            "fmr_upper_bound": lead.fmr_upper_bound,
                        }
                        for rank, lead in enumerate(leads, start=1)
                    ],
                )
        return entry.seq, [self._load(conn, search_id) for search_id, _ in groups]

    def decide(
        self, reviewer: User, search_id: str, rank: int, verdict: Verdict | str, note: str
    ) -> LeadState:
        """Record ``reviewer``'s verdict on lead ``rank`` of a search; returns the lead's state."""
        try:
            verdict = Verdict(verdict)
        except ValueError:
            raise InvalidArgument(
                f"unknown verdict {verdict!r}; verdicts: {', '.join(Verdict)}"
            ) from None
        note = _note(note, "a review decision")
        with self._audit.writing() as conn:
            search = self._load(conn, search_id)
            state = self._reviewable_lead(reviewer, search, rank)
            first = state.looked(reviewer.id)
            if self.blind_review and first is None:
                raise Conflict(
                    f"record your first look at lead {rank} of search {search_id} (same, "
                    "different or unsure, before seeing its score) before a verdict"
                )
            moment = self._audit.now()
            pending = ReviewDecision(search_id, rank, reviewer.id, verdict, note, moment, 0)
            status = lead_status(
                (*state.decisions, pending), two_person_rule=self._two(search.actor)
            )
            entry = self._audit.append(
                AuditRecord(
                    operation=AuditOp.REVIEW,
                    actor=reviewer.id,
                    purpose=search.purpose,
                    case_ref=search.case_ref,
                    galleries=(state.lead.gallery,),
                    model_id=search.model_id,
                    candidates=(state.lead,),
                    details={
                        "search_id": search_id,
                        "search_seq": search.audit_seq,
                        "rank": rank,
                        "subject_id": state.lead.subject_id,
                        "verdict": str(verdict),
                        "note": pending.note,
                        "status": str(status),
                        "two_person_rule": self._two(search.actor),
                        "orgs": [search.requester_org, search.owner_of(state.lead.gallery)],
                        "first_look": None if first is None else str(first.judgement),
                        "first_look_seq": None if first is None else first.audit_seq,
                    },
                ),
                connection=conn,
            )
            conn.execute(
                sa.insert(schema.decisions).values(
                    search_id=search_id,
                    rank=rank,
                    reviewer=reviewer.id,
                    verdict=str(verdict),
                    note=pending.note,
                    decided_at=format_timestamp(entry.timestamp),
                    audit_seq=entry.seq,
                )
            )
            return self._load(conn, search_id).lead(rank)

    def first_look(
        self, reviewer: User, search_id: str, rank: int, judgement: Judgement | str
    ) -> LeadState:
        """Record ``reviewer``'s judgement of lead ``rank``'s two faces, made before any score
        was shown to them (audited; once per reviewer and lead)."""
        try:
            judgement = Judgement(judgement)
        except ValueError:
            raise InvalidArgument(
                f"unknown judgement {judgement!r}; judgements: {', '.join(Judgement)}"
            ) from None
        with self._audit.writing() as conn:
            search = self._load(conn, search_id)
            state = self._reviewable_lead(reviewer, search, rank)
            if state.looked(reviewer.id) is not None:
                raise Conflict(f"{reviewer.id!r} already recorded a first look at lead {rank}")
            if state.current.get(reviewer.id) is not None:
                raise Conflict(
                    f"{reviewer.id!r} already decided lead {rank}: too late to look blind"
                )
            entry = self._audit.append(
                AuditRecord(
                    operation=AuditOp.REVIEW_FIRST_LOOK,
                    actor=reviewer.id,
                    purpose=search.purpose,
                    case_ref=search.case_ref,
                    galleries=(state.lead.gallery,),
                    model_id=search.model_id,
                    details={
                        "search_id": search_id,
                        "search_seq": search.audit_seq,
                        "rank": rank,
                        "judgement": str(judgement),
                        "orgs": [search.requester_org, search.owner_of(state.lead.gallery)],
                    },
                ),
                connection=conn,
            )
            conn.execute(
                sa.insert(schema.first_looks).values(
                    search_id=search_id,
                    rank=rank,
                    reviewer=reviewer.id,
                    judgement=str(judgement),
                    looked_at=format_timestamp(entry.timestamp),
                    audit_seq=entry.seq,
                )
            )
            return self._load(conn, search_id).lead(rank)

    def _reviewable_lead(self, reviewer: User, search: SearchRecord, rank: int) -> LeadState:
        """Lead ``rank`` of ``search`` if ``reviewer`` may review it; else why not."""
        try:
            state = search.lead(rank)
        except KeyError:
            raise NotFound(f"search {search.search_id} has no lead {rank}") from None
        if state.status is LeadStatus.ERASED:
            raise Conflict(f"lead {rank} of search {search.search_id} names a subject since erased")
        if same_person(reviewer.id, search.actor):
            raise PermissionDenied("a searcher may not review their own search")
        if reviewer.local:
            raise AuthenticationFailed(
                "a review needs an account: set FACELEDGER_API_KEY (or "
                "FACELEDGER_API_KEY_FILE) to a key from `faceledger users issue-key`"
            )
        authorize(reviewer, Operation.REVIEW, state.lead.gallery)
        if search.withheld(state) and not _owns(reviewer, search, state):
            raise PermissionDenied(
                f"lead {rank} of search {search.search_id} is redacted until a reviewer of "
                f"{search.owner_of(state.lead.gallery)!r} releases it"
            )
        return state

    def release(self, reviewer: User, search_id: str, rank: int, note: str) -> LeadState:
        """A reviewer of the gallery's owner releases a redacted lead to the searching
        organisation (audited, with the subject it names); returns the lead's state."""
        note = _note(note, "a release")
        with self._audit.writing() as conn:
            search = self._load(conn, search_id)
            try:
                state = search.lead(rank)
            except KeyError:
                raise NotFound(f"search {search_id} has no lead {rank}") from None
            gallery = state.lead.gallery
            if reviewer.local:
                raise AuthenticationFailed("releasing a lead needs an account's API key")
            authorize(reviewer, Operation.LEAD_RELEASE, gallery)
            if not _owns(reviewer, search, state):
                raise PermissionDenied(
                    f"only reviewers of {search.owner_of(gallery)!r} release its leads"
                )
            if not search.terms(gallery).redacted:
                raise Conflict(f"lead {rank} of search {search_id} is not redacted")
            if state.release is not None:
                raise Conflict(f"lead {rank} of search {search_id} was already released")
            if state.status is LeadStatus.ERASED:
                raise Conflict(f"lead {rank} of search {search_id} names a subject since erased")
            entry = self._audit.append(
                AuditRecord(
                    operation=AuditOp.LEAD_RELEASE,
                    actor=reviewer.id,
                    purpose=search.purpose,
                    case_ref=search.case_ref,
                    galleries=(gallery,),
                    model_id=search.model_id,
                    details={
                        "search_id": search_id,
                        "search_seq": search.audit_seq,
                        "rank": rank,
                        "subject_id": state.lead.subject_id,
                        "note": note,
                        "agreement_id": search.terms(gallery).agreement_id,
                        "orgs": [search.requester_org, search.owner_of(gallery)],
                    },
                ),
                connection=conn,
            )
            conn.execute(
                sa.insert(schema.releases).values(
                    search_id=search_id,
                    rank=rank,
                    released_by=reviewer.id,
                    released_at=format_timestamp(entry.timestamp),
                    note=note,
                    audit_seq=entry.seq,
                )
            )
            return self._load(conn, search_id).lead(rank)

    def forget_subject(self, gallery: str, subject_id: str) -> int:
        """Close every lead naming an erased subject and keep no trace of who it named: the
        lead's subject becomes :data:`ERASED_SUBJECT` and its template is unlinked (the search's
        audit entry, which cannot change, is the only record). Returns the leads changed."""
        t = schema.leads
        with translate_errors("erase leads"), self._engine.begin() as conn:
            done = conn.execute(
                t.update()
                .where(t.c.gallery == gallery, t.c.subject_id == subject_id)
                .values(subject_id=ERASED_SUBJECT, template_id=None)
            )
            return int(done.rowcount or 0)

    def shows_template(self, org: str, gallery: str, template_id: int) -> bool:
        """Whether a search by ``org`` got template ``template_id`` of ``gallery`` as a lead
        that ``org`` may see (its gallery not redacted, or the lead released)."""
        t, sg, rel = schema.leads, schema.search_galleries, schema.releases
        released = sa.exists().where(rel.c.search_id == t.c.search_id, rel.c.rank == t.c.rank)
        query = (
            sa.select(t.c.search_id)
            .join(sg, (sg.c.search_id == t.c.search_id) & (sg.c.gallery == t.c.gallery))
            .where(
                t.c.gallery == gallery,
                t.c.template_id == template_id,
                sg.c.requester_org == org,
                sa.or_(sg.c.redacted.is_(False), released),
            )
            .limit(1)
        )
        with translate_errors("read leads"), self._engine.connect() as conn:
            found = conn.execute(query).first()
            conn.rollback()
        return found is not None

    def leads_naming(self, gallery: str, subject_id: str) -> int:
        """How many leads still name ``subject_id`` of ``gallery`` (erasure checks)."""
        t = schema.leads
        with translate_errors("read leads"), self._engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.count())
                .select_from(t)
                .where(t.c.gallery == gallery, t.c.subject_id == subject_id)
            ).scalar_one()
            conn.rollback()
        return int(found)

    def search(self, search_id: str) -> SearchRecord:
        with translate_errors("read search"), self._engine.connect() as conn:
            found = self._load(conn, search_id)
            conn.rollback()
        return found

    def searches(
        self,
        *,
        actor: str | None = None,
        org: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[SearchRecord]:
        """Recent searches, newest first; with ``org``, those it made or that searched a
        gallery it owns (a search recorded before organisations is the default one's)."""
        t = schema.searches
        query = sa.select(t.c.search_id).order_by(t.c.created_at.desc(), t.c.audit_seq.desc())
        if actor is not None:
            query = query.where(t.c.actor == actor)
        if org is not None:
            query = query.where(concerning(org))
        if since is not None:
            query = query.where(t.c.created_at >= format_timestamp(since))
        with translate_errors("read searches"), self._engine.connect() as conn:
            ids = list(conn.execute(query.limit(max(0, limit))).scalars())
            result = [self._load(conn, str(i)) for i in ids]
            conn.rollback()
        return result

    def awaiting_review(
        self,
        reviewer: User,
        *,
        limit: int = 50,
        offset: int = 0,
        gallery: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[SearchRecord]:
        """Searches by others with an open lead that ``reviewer`` may review and has not
        decided, oldest first: ``limit`` of them after the first ``offset``; only those with
        such a lead from ``gallery``, made in ``[since, until)``, when given."""
        t = schema.searches
        query = (
            sa.select(t.c.search_id)
            .where(t.c.actor.not_in(own_names(reviewer.id)))
            .order_by(t.c.created_at, t.c.audit_seq)
        )
        if since is not None:
            query = query.where(t.c.created_at >= format_timestamp(since))
        if until is not None:
            query = query.where(t.c.created_at < format_timestamp(until))
        if gallery is not None:
            query = query.where(
                t.c.search_id.in_(
                    sa.select(schema.leads.c.search_id).where(schema.leads.c.gallery == gallery)
                )
            )
        found: list[SearchRecord] = []
        with translate_errors("read searches"), self._engine.connect() as conn:
            for search_id in list(conn.execute(query).scalars()):
                search = self._load(conn, str(search_id))
                if any(
                    self._reviewable(reviewer, search, state)
                    and (gallery is None or state.lead.gallery == gallery)
                    for state in search.leads
                ):
                    if offset > 0:
                        offset -= 1
                        continue
                    found.append(search)
                    if len(found) >= limit:
                        break
            conn.rollback()
        return found

    def _two(self, searcher: str) -> bool:
        """Two confirmations needed: by setting, or because no credential backed the searcher
        (a local operator), so that one of the two is surely someone else."""
        return self.two_person_rule or searcher.startswith(LOCAL_PREFIX)

    @staticmethod
    def _reviewable(reviewer: User, search: SearchRecord, state: LeadState) -> bool:
        if not state.status.open or reviewer.id in state.current:
            return False
        if search.withheld(state) and not _owns(reviewer, search, state):
            return False
        try:
            authorize(reviewer, Operation.REVIEW, state.lead.gallery)
        except PermissionDenied:
            return False
        return True

    def _load(self, conn: sa.Connection, search_id: str) -> SearchRecord:
        row = conn.execute(
            sa.select(schema.searches).where(schema.searches.c.search_id == search_id)
        ).first()
        if row is None:
            raise NotFound(f"no search {search_id!r}")
        d = schema.decisions
        by_rank: defaultdict[int, list[ReviewDecision]] = defaultdict(list)
        for r in conn.execute(sa.select(d).where(d.c.search_id == search_id).order_by(d.c.id)):
            by_rank[int(r.rank)].append(
                ReviewDecision(
                    search_id,
                    int(r.rank),
                    str(r.reviewer),
                    Verdict(r.verdict),
                    str(r.note),
                    parse_timestamp(r.decided_at),
                    int(r.audit_seq),
                )
            )
        fl = schema.first_looks
        looks: defaultdict[int, list[FirstLook]] = defaultdict(list)
        for r in conn.execute(sa.select(fl).where(fl.c.search_id == search_id)):
            looks[int(r.rank)].append(
                FirstLook(
                    str(r.reviewer),
                    Judgement(r.judgement),
                    parse_timestamp(r.looked_at),
                    int(r.audit_seq),
                )
            )
        lf = schema.lead_faces
        faces = {
            int(r.rank): int(r.face_index)
            for r in conn.execute(sa.select(lf).where(lf.c.search_id == search_id))
        }
        rel = schema.releases
        released = {
            int(r.rank): Release(
                str(r.released_by), parse_timestamp(r.released_at), str(r.note), int(r.audit_seq)
            )
            for r in conn.execute(sa.select(rel).where(rel.c.search_id == search_id))
        }
        sg = schema.search_galleries
        requester = DEFAULT_ORG
        terms: dict[str, GalleryTerms] = {}
        for r in conn.execute(sa.select(sg).where(sg.c.search_id == search_id)):
            requester = str(r.requester_org)
            terms[str(r.gallery)] = GalleryTerms(
                str(r.owner_org),
                None if r.agreement_id is None else str(r.agreement_id),
                bool(r.redacted),
            )
        t = schema.leads
        states = []
        for r in conn.execute(sa.select(t).where(t.c.search_id == search_id).order_by(t.c.rank)):
            decided = tuple(by_rank[int(r.rank)])
            erased = r.subject_id == ERASED_SUBJECT
            lead = Lead(
                gallery=str(r.gallery),
                subject_id=ERASED_SHOWN if erased else str(r.subject_id),
                score=float(r.score),
                fmr=None if r.fmr is None else float(r.fmr),
                fmr_upper_bound=bool(r.fmr_upper_bound),
                template_id=None if r.template_id is None else int(r.template_id),
            )
            status = lead_status(decided, two_person_rule=self._two(str(row.actor)))
            if erased:
                status = LeadStatus.ERASED
            rank = int(r.rank)
            states.append(
                LeadState(
                    rank,
                    lead,
                    status,
                    decided,
                    released.get(rank),
                    tuple(sorted(looks[rank], key=lambda f: f.audit_seq)),
                    faces.get(rank),
                )
            )
        return SearchRecord(
            search_id=str(row.search_id),
            actor=str(row.actor),
            created_at=parse_timestamp(row.created_at),
            purpose=str(row.purpose),
            case_ref=str(row.case_ref),
            galleries=tuple(json.loads(row.galleries)),
            model_id=row.model_id,
            audit_seq=int(row.audit_seq),
            leads=tuple(states),
            requester_org=requester,
            gallery_terms=terms,
        )


def concerning(org: str) -> sa.ColumnElement[bool]:
    """Whether a search (a ``review_searches`` row) concerns ``org``: it made the search or
    owns a gallery searched (a search recorded before organisations is the default one's)."""
    t, sg = schema.searches, schema.search_galleries
    theirs = (sg.c.owner_org == org) | (sg.c.requester_org == org)
    found: sa.ColumnElement[bool] = t.c.search_id.in_(sa.select(sg.c.search_id).where(theirs))
    if org == DEFAULT_ORG:
        found = sa.or_(found, t.c.search_id.not_in(sa.select(sg.c.search_id)))
    return found


def _owns(user: User, search: SearchRecord, state: LeadState) -> bool:
    """Whether ``user`` belongs to the organisation owning ``state``'s gallery (the deployment
    itself counts as every organisation)."""
    return user.org is None or user.org == search.owner_of(state.lead.gallery)


def _note(note: str, what: str) -> str:
    if not isinstance(note, str) or not note.strip():
        raise InvalidArgument(f"{what} needs a note")
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidArgument(f"a note is at most {MAX_NOTE_CHARS} characters")
    return note.strip()
