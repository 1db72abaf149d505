"""Organisations and sharing agreements: create, read, change, revoke; release redacted leads.

The rules live in :mod:`faceledger.access.orgs` (who may, what an agreement may say, what is
audited); these functions are what the CLI, the service and the UI call, so that each reads
and writes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faceledger.access import (
    Agreement,
    AgreementTerms,
    Operation,
    Organisation,
    PurposeCategory,
    User,
    authorize,
)
from faceledger.access.policy import Role
from faceledger.errors import PermissionDenied
from faceledger.gallery.workspace import Workspace
from faceledger.review import LeadState


@dataclass(frozen=True)
class CreateOrg:
    org_id: str
    display_name: str = ""


@dataclass(frozen=True)
class DefinePurpose:
    name: str
    description: str = ""
    org: str | None = None
    """Default: the acting administrator's organisation."""


@dataclass(frozen=True)
class ChangeAgreement:
    agreement_id: str
    purposes: tuple[str, ...] | None = None
    legal_basis: str | None = None
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    level: str | None = None
    max_candidates: int | None = None
    clear_max_candidates: bool = False
    redacted: bool | None = None

    def changes(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            k: v
            for k, v in {
                "purposes": self.purposes,
                "legal_basis": self.legal_basis,
                "starts_at": self.starts_at,
                "expires_at": self.expires_at,
                "level": self.level,
                "max_candidates": self.max_candidates,
                "redacted": self.redacted,
            }.items()
            if v is not None
        }
        if self.clear_max_candidates:
            found["max_candidates"] = None
        return found


@dataclass(frozen=True)
class ReleaseLead:
    search_id: str
    rank: int
    note: str


def create_org(ws: Workspace, actor: User, req: CreateOrg) -> Organisation:
    """A new organisation (the deployment operator); its first administrator comes next."""
    return ws.orgs.create_org(req.org_id, req.display_name, by=actor)


def list_orgs(ws: Workspace, actor: User) -> list[Organisation]:
    """Every organisation for the operator (and the deployment); one's own for anyone else
    (agreements name their parties, so a partner's id is known from them)."""
    everyone = ws.orgs.orgs()
    if actor.org is None or Role.OPERATOR in actor.roles:
        return everyone
    if not actor.active:
        raise PermissionDenied(f"user {actor.id!r} is deactivated")
    partners = {actor.org}
    if Role.ADMIN in actor.roles or Role.AUDITOR in actor.roles:
        for a in ws.orgs.agreements(actor.org):
            partners.update({a.owner_org, a.terms.grantee_org})
    return [o for o in everyone if o.id in partners]


def define_purpose(ws: Workspace, actor: User, req: DefinePurpose) -> PurposeCategory:
    org = req.org or actor.org
    if org is None:
        raise PermissionDenied("name the organisation whose purpose this is")
    return ws.orgs.define_purpose(org, req.name, req.description, by=actor)


def list_purposes(ws: Workspace, actor: User, org: str | None = None) -> list[PurposeCategory]:
    """The purpose categories of ``org`` (default: the actor's)."""
    authorize(actor, Operation.AGREEMENT_READ)
    wanted = org or actor.org
    if wanted is None:
        raise PermissionDenied("name the organisation whose purposes to list")
    # a partner may read the categories of an organisation it has an agreement with
    partner = any(wanted in (a.owner_org, a.terms.grantee_org) for a in _parties(ws, actor))
    if actor.org is not None and wanted != actor.org and not partner:
        raise PermissionDenied(f"user {actor.id!r} has no agreement with {wanted!r}")
    return ws.orgs.purposes(wanted)


def create_agreement(ws: Workspace, actor: User, terms: AgreementTerms) -> Agreement:
    return ws.orgs.create_agreement(terms, by=actor)


def change_agreement(ws: Workspace, actor: User, req: ChangeAgreement) -> Agreement:
    return ws.orgs.change_agreement(req.agreement_id, req.changes(), by=actor)


def revoke_agreement(ws: Workspace, actor: User, agreement_id: str, reason: str) -> Agreement:
    return ws.orgs.revoke_agreement(agreement_id, reason, by=actor)


def list_agreements(ws: Workspace, actor: User) -> list[Agreement]:
    """The agreements the actor's organisation is a party to (its administrators, auditors);
    every one for the deployment itself."""
    authorize(actor, Operation.AGREEMENT_READ)
    return _parties(ws, actor)


def show_agreement(ws: Workspace, actor: User, agreement_id: str) -> Agreement:
    authorize(actor, Operation.AGREEMENT_READ)
    found = ws.orgs.agreement(agreement_id)
    if actor.org is not None and actor.org not in (found.owner_org, found.terms.grantee_org):
        raise PermissionDenied(f"user {actor.id!r} is not party to agreement {agreement_id}")
    return found


def release_lead(ws: Workspace, actor: User, req: ReleaseLead) -> LeadState:
    """A reviewer of the gallery's owner releases a redacted lead to the searcher (audited)."""
    return ws.reviews.release(actor, req.search_id, req.rank, req.note)


def record_expired_agreements(ws: Workspace, actor: User) -> list[str]:
    """Write an ``agreement_expire`` entry for each agreement that expired since the last
    call (the service's timer calls this; the agreement stopped applying at its expiry
    whether or not this ran). Returns the agreements recorded."""
    authorize(actor, Operation.RETENTION_APPLY)
    return ws.orgs.audit_expired(by=actor)


def _parties(ws: Workspace, actor: User) -> list[Agreement]:
    return ws.orgs.agreements(actor.org)
