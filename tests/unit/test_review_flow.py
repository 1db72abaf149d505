"""Human review of search leads: the two-person rule, no self-review, grants, and the audit
trail of every decision, on a real SQLite file and a real PostgreSQL server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from faceledger.access import AccessControl, GrantLevel, Role, User
from faceledger.audit import AuditLog, AuditOp, AuditRecord, Lead
from faceledger.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PurposeRequired,
)
from faceledger.review import (
    Judgement,
    LeadStatus,
    ReviewDecision,
    Reviews,
    Verdict,
    lead_status,
)

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class StepClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


SQLITE_ONLY = pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
"""Tests of review rules rather than of SQL: one database is enough."""


@dataclass
class Desk:
    audit: AuditLog
    reviews: Reviews
    users: dict[str, User]


@pytest.fixture
def desk(db_engine: sa.Engine) -> Desk:
    audit = AuditLog(db_engine, clock=StepClock())
    access = AccessControl(
        audit, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    root = access.create_user("root", [Role.ADMIN], by=None)
    plan = {
        "ana": ([Role.SEARCHER], {"g1": GrantLevel.SEARCH, "g2": GrantLevel.SEARCH}),
        "rex": ([Role.REVIEWER], {"g1": GrantLevel.VIEW_IMAGES, "g2": GrantLevel.VIEW_IMAGES}),
        "rita": ([Role.REVIEWER], {"g1": GrantLevel.VIEW_IMAGES, "g2": GrantLevel.ENROL}),
        "roy": ([Role.REVIEWER], {"g1": GrantLevel.VIEW_IMAGES}),
        "sue": ([Role.SEARCHER, Role.REVIEWER], {"g1": GrantLevel.VIEW_IMAGES}),
        "vic": ([Role.REVIEWER], {"g1": GrantLevel.SEARCH}),
    }
    users = {}
    for uid, (roles, grants) in plan.items():
        access.create_user(uid, roles, by=root)
        for gallery, level in grants.items():
            access.grant(uid, gallery, level, by=root)
        users[uid] = access.get_user(uid)
    return Desk(audit, Reviews(audit), users)


def search_record(
    actor: str, galleries: tuple[str, ...] = ("g1", "g2"), **kw: object
) -> AuditRecord:
    fields: dict[str, object] = {
        "purpose": "burglary",
        "case_ref": "B-77",
        "model_id": "dlib-resnet-v1",
        "target_fpir": 0.01,
        "threshold": 0.93,
        "probe_sha256": "cd" * 32,
        "candidates": (
            Lead("g1", "subject-a", 0.981, 1.2e-6, False, 101),
            Lead("g2", "subject-b", 0.944, 3.0e-4, False, 202),
        ),
    }
    fields.update(kw)
    return AuditRecord(operation=AuditOp.SEARCH, actor=actor, galleries=galleries, **fields)  # type: ignore[arg-type]


def test_given_a_search_when_recorded_then_leads_and_audit_entry_agree(desk: Desk) -> None:
    ana = desk.users["ana"]
    before = desk.audit.head().seq
    search = desk.reviews.record_search(ana, search_record("ana", purpose="  burglary "))
    assert search.actor == "ana" and search.purpose == "burglary" and search.case_ref == "B-77"
    assert search.galleries == ("g1", "g2")
    assert [s.status for s in search.leads] == [LeadStatus.PENDING, LeadStatus.PENDING]
    assert [(s.rank, s.lead.subject_id, s.lead.template_id) for s in search.leads] == [
        (1, "subject-a", 101),
        (2, "subject-b", 202),
    ]
    assert search.leads[0].lead.score == 0.981 and search.leads[1].lead.fmr == 3.0e-4
    entry = desk.audit.get(search.audit_seq)
    assert entry.seq == before + 1
    assert entry.record.details["search_id"] == search.search_id
    assert entry.record.purpose == "burglary"
    assert [c.subject_id for c in entry.record.candidates] == ["subject-a", "subject-b"]
    assert desk.reviews.search(search.search_id) == search
    assert desk.reviews.searches(actor="ana") == [search]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("actor", "record", "error"),
    [
        ("ana", search_record("ana", purpose=None), PurposeRequired),
        ("ana", search_record("ana", case_ref=" "), PurposeRequired),
        ("ana", search_record("ana", galleries=("g1", "g3")), PermissionDenied),
        ("rex", search_record("rex"), PermissionDenied),
        ("ana", search_record("rex"), InvalidArgument),
        ("ana", search_record("ana", galleries=("g1",)), InvalidArgument),  # lead from g2
        ("ana", search_record("ana", galleries=()), InvalidArgument),
    ],
)
def test_given_a_search_that_breaks_a_rule_when_recorded_then_refused_and_nothing_logged(
    desk: Desk, actor: str, record: AuditRecord, error: type[Exception]
) -> None:
    before = desk.audit.head().seq
    with pytest.raises(error):
        desk.reviews.record_search(desk.users[actor], record)
    assert desk.audit.head().seq == before
    assert desk.reviews.searches() == []


def test_given_the_two_person_rule_when_reviewers_confirm_then_confirmed_only_by_two(
    desk: Desk,
) -> None:
    search = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    sid = search.search_id
    state = desk.reviews.decide(desk.users["rex"], sid, 1, Verdict.CONFIRMED, "same scar")
    assert state.status is LeadStatus.AWAITING_SECOND
    state = desk.reviews.decide(desk.users["rex"], sid, 1, "confirmed", "looked again")
    assert state.status is LeadStatus.AWAITING_SECOND, "one reviewer twice is still one"
    state = desk.reviews.decide(desk.users["rita"], sid, 1, Verdict.CONFIRMED, "agree")
    assert state.status is LeadStatus.CONFIRMED
    assert state.confirmed_by == ("rex", "rita")
    assert [d.reviewer for d in state.decisions] == ["rex", "rex", "rita"]

    reviews = [e for e in desk.audit.entries() if e.record.operation == AuditOp.REVIEW]
    assert [(e.record.actor, e.record.details["status"]) for e in reviews] == [
        ("rex", "awaiting_second_confirmation"),
        ("rex", "awaiting_second_confirmation"),
        ("rita", "confirmed"),
    ]
    last = reviews[-1].record
    assert last.details["search_id"] == sid and last.details["rank"] == 1
    assert last.details["search_seq"] == search.audit_seq
    assert last.details["note"] == "agree" and last.details["verdict"] == "confirmed"
    assert last.purpose == "burglary" and last.case_ref == "B-77" and last.galleries == ("g1",)
    assert [c.subject_id for c in last.candidates] == ["subject-a"]
    assert [d.audit_seq for d in state.decisions] == [e.seq for e in reviews]
    assert desk.audit.verify().ok

    report = desk.audit.report(T0, T0 + timedelta(days=1))
    assert report["reviews"]["leads_confirmed"] == 1
    assert report["reviews"]["by_reviewer"] == {"rex": {"confirmed": 2}, "rita": {"confirmed": 1}}


@SQLITE_ONLY
def test_given_the_rule_switched_off_when_one_reviewer_confirms_then_confirmed(
    desk: Desk,
) -> None:
    single = Reviews(desk.audit, two_person_rule=False)
    search = single.record_search(desk.users["ana"], search_record("ana"))
    state = single.decide(desk.users["rex"], search.search_id, 2, Verdict.CONFIRMED, "clear")
    assert state.status is LeadStatus.CONFIRMED
    # the same decisions read under the two-person rule are not enough
    assert desk.reviews.search(search.search_id).lead(2).status is LeadStatus.AWAITING_SECOND


def test_given_a_searcher_with_reviewer_role_when_reviewing_own_search_then_refused(
    desk: Desk,
) -> None:
    sue = desk.users["sue"]
    search = desk.reviews.record_search(
        sue, search_record("sue", galleries=("g1",), candidates=(Lead("g1", "subject-a", 0.97),))
    )
    before = desk.audit.head().seq
    with pytest.raises(PermissionDenied, match="own search"):
        desk.reviews.decide(sue, search.search_id, 1, Verdict.CONFIRMED, "it is him")
    assert desk.audit.head().seq == before
    assert desk.reviews.search(search.search_id).lead(1).decisions == ()
    # and sue may review someone else's lead in g1
    other = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    state = desk.reviews.decide(sue, other.search_id, 1, Verdict.REJECTED, "different ears")
    assert state.status is LeadStatus.REJECTED


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("reviewer", "rank"),
    [("vic", 1), ("roy", 2), ("ana", 1)],  # search grant only; no grant on g2; not a reviewer
)
def test_given_a_reviewer_without_rights_on_the_lead_when_deciding_then_refused(
    desk: Desk, reviewer: str, rank: int
) -> None:
    search = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    before = desk.audit.head().seq
    with pytest.raises(PermissionDenied):
        desk.reviews.decide(desk.users[reviewer], search.search_id, rank, "rejected", "no")
    assert desk.audit.head().seq == before


@SQLITE_ONLY
def test_given_bad_decisions_when_made_then_clear_errors(desk: Desk) -> None:
    search = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    rex = desk.users["rex"]
    with pytest.raises(InvalidArgument):
        desk.reviews.decide(rex, search.search_id, 1, "probably", "hmm")
    with pytest.raises(InvalidArgument):
        desk.reviews.decide(rex, search.search_id, 1, Verdict.CONFIRMED, "   ")
    with pytest.raises(NotFound):
        desk.reviews.decide(rex, search.search_id, 3, Verdict.CONFIRMED, "x")
    with pytest.raises(NotFound):
        desk.reviews.decide(rex, "0" * 32, 1, Verdict.CONFIRMED, "x")
    with pytest.raises(NotFound):
        desk.reviews.search("nope")


@SQLITE_ONLY
def test_given_mixed_verdicts_when_reviewed_then_statuses_follow_latest_decisions(
    desk: Desk,
) -> None:
    search = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    sid = search.search_id
    rex, rita = desk.users["rex"], desk.users["rita"]
    assert desk.reviews.decide(rex, sid, 2, "inconclusive", "blurred").status is (
        LeadStatus.INCONCLUSIVE
    )
    assert desk.reviews.decide(rita, sid, 2, "confirmed", "match").status is (
        LeadStatus.AWAITING_SECOND
    )
    assert desk.reviews.decide(rex, sid, 2, "rejected", "on reflection no").status is (
        LeadStatus.DISPUTED
    )
    assert desk.reviews.decide(rita, sid, 2, "rejected", "agree, no").status is (
        LeadStatus.REJECTED
    )
    lead = desk.reviews.search(sid).lead(2)
    assert lead.current == {"rex": Verdict.REJECTED, "rita": Verdict.REJECTED}
    assert len(lead.decisions) == 4


def test_given_open_leads_when_listing_work_then_each_reviewer_sees_what_they_may_do(
    desk: Desk,
) -> None:
    ana_search = desk.reviews.record_search(desk.users["ana"], search_record("ana"))
    sue_search = desk.reviews.record_search(
        desk.users["sue"],
        search_record("sue", galleries=("g1",), candidates=(Lead("g1", "subject-c", 0.95),)),
    )
    ids = {"ana": ana_search.search_id, "sue": sue_search.search_id}
    assert [s.search_id for s in desk.reviews.awaiting_review(desk.users["rex"])] == [
        ids["ana"],
        ids["sue"],
    ]
    assert [s.search_id for s in desk.reviews.awaiting_review(desk.users["sue"])] == [ids["ana"]]
    assert desk.reviews.awaiting_review(desk.users["vic"]) == []
    desk.reviews.decide(desk.users["rex"], ids["sue"], 1, "rejected", "no")
    assert [s.search_id for s in desk.reviews.awaiting_review(desk.users["rex"])] == [ids["ana"]]
    # roy may review g1 only: ana's first lead, not sue's (already rejected, so closed)
    assert [s.search_id for s in desk.reviews.awaiting_review(desk.users["roy"])] == [ids["ana"]]
    for rank in (1, 2):
        desk.reviews.decide(desk.users["rex"], ids["ana"], rank, "confirmed", "yes")
        desk.reviews.decide(desk.users["rita"], ids["ana"], rank, "confirmed", "yes")
    assert desk.reviews.awaiting_review(desk.users["roy"]) == []


def _d(reviewer: str, verdict: Verdict) -> ReviewDecision:
    return ReviewDecision("s", 1, reviewer, verdict, "n", T0, 0)


C, R, N = Verdict.CONFIRMED, Verdict.REJECTED, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("decisions", "two", "one"),
    [
        ([], LeadStatus.PENDING, LeadStatus.PENDING),
        ([("a", C)], LeadStatus.AWAITING_SECOND, LeadStatus.CONFIRMED),
        ([("a", C), ("a", C)], LeadStatus.AWAITING_SECOND, LeadStatus.CONFIRMED),
        ([("a", C), ("b", C)], LeadStatus.CONFIRMED, LeadStatus.CONFIRMED),
        ([("a", C), ("b", R)], LeadStatus.DISPUTED, LeadStatus.DISPUTED),
        ([("a", C), ("a", R)], LeadStatus.REJECTED, LeadStatus.REJECTED),
        ([("a", N)], LeadStatus.INCONCLUSIVE, LeadStatus.INCONCLUSIVE),
        ([("a", N), ("b", C)], LeadStatus.AWAITING_SECOND, LeadStatus.CONFIRMED),
        ([("a", R), ("b", N)], LeadStatus.REJECTED, LeadStatus.REJECTED),
        ([("a", C), ("b", C), ("c", R)], LeadStatus.DISPUTED, LeadStatus.DISPUTED),
    ],
)
def test_given_decisions_when_combined_then_the_status_rule_holds(
    decisions: list[tuple[str, Verdict]], two: LeadStatus, one: LeadStatus
) -> None:
    ds = [_d(r, v) for r, v in decisions]
    assert lead_status(ds, two_person_rule=True) is two
    assert lead_status(ds, two_person_rule=False) is one


@SQLITE_ONLY
def test_blind_review_asks_for_a_first_look_before_the_verdict(desk: Desk) -> None:
    reviews = Reviews(desk.audit, blind_review=True)
    sid = reviews.record_search(desk.users["ana"], search_record("ana")).search_id
    rex, rita = desk.users["rex"], desk.users["rita"]
    with pytest.raises(Conflict, match="first look"):
        reviews.decide(rex, sid, 1, Verdict.CONFIRMED, "looks alike")
    with pytest.raises(PermissionDenied):  # the searcher looks at nothing of their own
        reviews.first_look(desk.users["ana"], sid, 1, Judgement.SAME)
    with pytest.raises(InvalidArgument):
        reviews.first_look(rex, sid, 1, "probably")
    with pytest.raises(PermissionDenied):  # a search grant shows no faces to judge
        reviews.first_look(desk.users["vic"], sid, 1, Judgement.SAME)
    state = reviews.first_look(rex, sid, 1, Judgement.DIFFERENT)
    assert [(f.reviewer, f.judgement) for f in state.first_looks] == [("rex", "different")]
    assert state.status is LeadStatus.PENDING  # a first look is no verdict
    with pytest.raises(Conflict):  # one first look each, never rewritten
        reviews.first_look(rex, sid, 1, Judgement.SAME)
    state = reviews.decide(rex, sid, 1, Verdict.CONFIRMED, "changed my mind on the ears")
    assert state.status is LeadStatus.AWAITING_SECOND
    reviews.first_look(rita, sid, 1, Judgement.SAME)
    assert reviews.decide(rita, sid, 1, "confirmed", "agree").status is LeadStatus.CONFIRMED
    looks = list(desk.audit.entries(operation=AuditOp.REVIEW_FIRST_LOOK))
    assert [(e.record.actor, e.record.details["judgement"]) for e in looks] == [
        ("rex", "different"),
        ("rita", "same"),
    ]
    (first_verdict, _) = desk.audit.entries(operation=AuditOp.REVIEW)
    assert first_verdict.record.details["first_look"] == "different"
    assert first_verdict.record.details["first_look_seq"] == looks[0].seq
    # without blind review (the workspace's setting) no first look is needed
    other = Reviews(desk.audit).record_search(desk.users["ana"], search_record("ana"))
    assert Reviews(desk.audit).decide(rex, other.search_id, 2, "rejected", "no").decisions
    # and a reviewer who has decided can no longer claim a blind first look
    with pytest.raises(Conflict, match="too late to look blind"):
        reviews.first_look(rex, other.search_id, 2, Judgement.SAME)
