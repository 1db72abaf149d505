"""Review values and the rule that turns reviewers' decisions into a lead's status.

The status of a lead depends only on each reviewer's *latest* decision (a reviewer may change
their mind; every decision stays in the history and the audit log):

- ``disputed``: someone confirms and someone rejects;
- ``confirmed``: enough different reviewers confirm (two under the two-person rule, else one);
- ``awaiting_second_confirmation``: confirmed by one reviewer, two are required;
- ``rejected``: someone rejects, nobody confirms;
- ``inconclusive``: only inconclusive decisions;
- ``pending``: no decision yet;
- ``erased``: the subject was erased since (closed whatever was decided).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from faceledger.access.policy import DEFAULT_ORG
from faceledger.audit.records import Lead

REDACTED_SUBJECT = "[redacted]"
"""What a redacted lead shows instead of its subject id (the owner has not released it)."""


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"


class Judgement(StrEnum):
    """A reviewer's first look at the two faces, before any score is shown."""

    SAME = "same"
    DIFFERENT = "different"
    UNSURE = "unsure"


class LeadStatus(StrEnum):
    PENDING = "pending"
    AWAITING_SECOND = "awaiting_second_confirmation"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    INCONCLUSIVE = "inconclusive"
    DISPUTED = "disputed"
    ERASED = "erased"
    """The lead's subject was erased: the lead is closed and names nobody."""

    @property
    def open(self) -> bool:
        """Whether the lead still needs a reviewer."""
        return self in (LeadStatus.PENDING, LeadStatus.AWAITING_SECOND, LeadStatus.DISPUTED)


@dataclass(frozen=True)
class ReviewDecision:
    search_id: str
    rank: int
    reviewer: str
    verdict: Verdict
    note: str
    decided_at: datetime
    audit_seq: int


@dataclass(frozen=True)
class FirstLook:
    reviewer: str
    judgement: Judgement
    looked_at: datetime
    audit_seq: int


@dataclass(frozen=True)
class Release:
    """A redacted lead released by a reviewer of the gallery's owner."""

    released_by: str
    released_at: datetime
    note: str
    audit_seq: int


@dataclass(frozen=True)
class GalleryTerms:
    """How a search used one gallery: whose it is, under which agreement, redacted or not."""

    owner_org: str = DEFAULT_ORG
    agreement_id: str | None = None
    redacted: bool = False


@dataclass(frozen=True)
class LeadState:
    """One lead of a search with its decisions (oldest first) and the resulting status."""

    rank: int
    lead: Lead
    status: LeadStatus
    decisions: tuple[ReviewDecision, ...]
    release: Release | None = None
    first_looks: tuple[FirstLook, ...] = ()
    face_index: int | None = None
    """The probe face the lead belongs to (None: recorded without it; the search's only face)."""

    def looked(self, reviewer: str) -> FirstLook | None:
        """``reviewer``'s first look at this lead, if any."""
        return next((f for f in self.first_looks if f.reviewer == reviewer), None)

    @property
    def current(self) -> Mapping[str, Verdict]:
        """Each reviewer's latest verdict."""
        return latest_verdicts(self.decisions)

    @property
    def confirmed_by(self) -> tuple[str, ...]:
        return tuple(sorted(r for r, v in self.current.items() if v is Verdict.CONFIRMED))


@dataclass(frozen=True)
class SearchRecord:
    """An audited 1:N search and the state of review of its leads."""

    search_id: str
    actor: str
    created_at: datetime
    purpose: str
    case_ref: str
    galleries: tuple[str, ...]
    model_id: str | None
    audit_seq: int
    leads: tuple[LeadState, ...]
    requester_org: str = DEFAULT_ORG
    gallery_terms: Mapping[str, GalleryTerms] = field(default_factory=dict)

    def lead(self, rank: int) -> LeadState:
        for state in self.leads:
            if state.rank == rank:
                return state
        raise KeyError(rank)

    def terms(self, gallery: str) -> GalleryTerms:
        return self.gallery_terms.get(gallery, GalleryTerms())

    def owner_of(self, gallery: str) -> str:
        return self.terms(gallery).owner_org

    def withheld(self, state: LeadState) -> bool:
        """Whether ``state``'s subject is still hidden from the searching organisation."""
        return self.terms(state.lead.gallery).redacted and state.release is None


def latest_verdicts(decisions: Iterable[ReviewDecision]) -> dict[str, Verdict]:
    latest: dict[str, Verdict] = {}
    for d in decisions:  # oldest first, so later decisions overwrite
        latest[d.reviewer] = d.verdict
    return latest


def lead_status(decisions: Iterable[ReviewDecision], *, two_person_rule: bool) -> LeadStatus:
    verdicts = list(latest_verdicts(decisions).values())
    confirms = verdicts.count(Verdict.CONFIRMED)
    rejects = verdicts.count(Verdict.REJECTED)
    if confirms and rejects:
        return LeadStatus.DISPUTED
    if confirms >= (2 if two_person_rule else 1):
        return LeadStatus.CONFIRMED
    if confirms:
        return LeadStatus.AWAITING_SECOND
    if rejects:
        return LeadStatus.REJECTED
    if verdicts:
        return LeadStatus.INCONCLUSIVE
    return LeadStatus.PENDING
