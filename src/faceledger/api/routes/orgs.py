"""Organisations, their purpose categories, and the agreements that share a gallery with
another organisation (:mod:`faceledger.usecases.organisations`; the rules and the audit live
in :mod:`faceledger.access.orgs`).

The deployment's operator creates organisations; an organisation's administrators define its
purpose categories and make, change and revoke the agreements on the galleries it owns; the
administrators and auditors of either party read them. Users are loaded per request, so a
revoked or expired agreement stops applying on the grantee's next request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from faceledger import usecases as uc
from faceledger.access import Agreement, AgreementTerms, GrantLevel
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.service import Service

router = APIRouter(tags=["organisations and agreements"])

OrgId = Annotated[str, Path(min_length=1, max_length=64, description="Organisation id.")]
AgreementId = Annotated[str, Path(min_length=1, max_length=64, description="Agreement id.")]


def _out(svc: Service, found: Agreement) -> s.AgreementOut:
    return convert.agreement(found, svc.ws.audit.now())


@router.get("/orgs", summary="Organisations (the operator: every one; others: their partners)")
def list_orgs(svc: ServiceDep, user: UserDep) -> list[s.OrgOut]:
    return [convert.org(o) for o in uc.list_orgs(svc.ws, user)]


@router.post("/orgs", status_code=201, summary="Create an organisation (the operator)")
def create_org(body: s.OrgIn, svc: ServiceDep, user: UserDep) -> s.OrgOut:
    """Its first administrator comes next: ``POST /users`` with ``org``."""
    created = uc.create_org(svc.ws, user, uc.CreateOrg(body.org_id, body.display_name))
    return convert.org(created)


@router.get("/orgs/{org}/purposes", summary="An organisation's purpose categories")
def list_purposes(org: OrgId, svc: ServiceDep, user: UserDep) -> list[s.PurposeOut]:
    """Its own administrators and auditors, and those of an organisation it has an
    agreement with."""
    return [convert.purpose(p) for p in uc.list_purposes(svc.ws, user, org)]


@router.post(
    "/orgs/{org}/purposes", status_code=201, summary="Define a purpose category (its admins)"
)
def define_purpose(org: OrgId, body: s.PurposeIn, svc: ServiceDep, user: UserDep) -> s.PurposeOut:
    """An agreement allows some of its owner's purpose categories; a search of the shared
    gallery must state one of them."""
    req = uc.DefinePurpose(body.name, body.description, org)
    return convert.purpose(uc.define_purpose(svc.ws, user, req))


@router.get("/agreements", summary="Agreements the caller's organisation is a party to")
def list_agreements(svc: ServiceDep, user: UserDep) -> list[s.AgreementOut]:
    return [_out(svc, a) for a in uc.list_agreements(svc.ws, user)]


@router.get("/agreements/{agreement_id}", summary="One agreement (its parties)")
def get_agreement(agreement_id: AgreementId, svc: ServiceDep, user: UserDep) -> s.AgreementOut:
    return _out(svc, uc.show_agreement(svc.ws, user, agreement_id))


@router.post("/agreements", status_code=201, summary="Share a gallery with another organisation")
def create_agreement(body: s.AgreementIn, svc: ServiceDep, user: UserDep) -> s.AgreementOut:
    """By an administrator of the gallery's owner. The grantee's administrators may then
    grant their users up to ``level`` on the gallery, for the purposes listed, from
    ``starts_at`` until ``expires_at``."""
    terms = AgreementTerms(
        gallery=body.gallery,
        grantee_org=body.grantee_org,
        purposes=tuple(body.purposes),
        legal_basis=body.legal_basis,
        starts_at=body.starts_at,
        expires_at=body.expires_at,
        level=GrantLevel(body.level),
        max_candidates=body.max_candidates,
        redacted=body.redacted,
    )
    created = uc.create_agreement(svc.ws, user, terms)
    svc.keys.clear()  # the grantee's users hold the gallery from their next request
    return _out(svc, created)


@router.patch("/agreements/{agreement_id}", summary="Change an agreement's terms (audited)")
def change_agreement(
    agreement_id: AgreementId, body: s.AgreementChangeIn, svc: ServiceDep, user: UserDep
) -> s.AgreementOut:
    """Fields left out stay as they are; ``clear_max_candidates`` removes the cap. A revoked
    or expired agreement cannot change (make a new one)."""
    req = uc.ChangeAgreement(
        agreement_id,
        purposes=None if body.purposes is None else tuple(body.purposes),
        legal_basis=body.legal_basis,
        starts_at=body.starts_at,
        expires_at=body.expires_at,
        level=body.level,
        max_candidates=body.max_candidates,
        clear_max_candidates=body.clear_max_candidates,
        redacted=body.redacted,
    )
    changed = uc.change_agreement(svc.ws, user, req)
    svc.keys.clear()
    return _out(svc, changed)


@router.post("/agreements/{agreement_id}/revoke", summary="End an agreement now (audited)")
def revoke_agreement(
    agreement_id: AgreementId, body: s.RevokeIn, svc: ServiceDep, user: UserDep
) -> s.AgreementOut:
    """The grantee's users lose the gallery on their next request."""
    revoked = uc.revoke_agreement(svc.ws, user, agreement_id, body.reason)
    svc.keys.clear()
    return _out(svc, revoked)
