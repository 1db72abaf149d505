"""Three organisations sharing galleries under agreements, end to end through the use cases,
on SQLite and PostgreSQL, with real faces: who may do what, purposes, caps, redaction and its
release, revocation and expiry on the next request, and both sides' view of a search.

metro owns ``metro-mugs`` and shares it with county (search; violent felonies; one candidate
at most; redacted) and with state (view_images; missing persons; not redacted; one day).
county owns ``county-mugs``. The deployment operator made the three and their first admins.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faceledger import Settings
from faceledger.access import AgreementTerms, GrantLevel, Operation, Role, User, authorize
from faceledger.audit import AuditOp
from faceledger.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PurposeOutsideAgreement,
)
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.review import REDACTED_SUBJECT, LeadStatus
from faceledger.usecases import (
    CreateGallery,
    DeleteGallery,
    EnrolImage,
    EraseSubject,
    ReleaseLead,
    SearchRequest,
    SearchResult,
    check_erasure,
    create_gallery,
    delete_gallery,
    enrol_image,
    enrolled_image,
    erase_subject,
    list_galleries,
    list_searches,
    read_search,
    release_lead,
    search,
)
from tests.postgres import PostgresCluster

FELONY = "violent felony investigation"
MISSING = "missing person"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    ws: Workspace
    clock: Clock
    users: dict[str, User]
    agreements: dict[str, str]
    images: Path

    def user(self, name: str) -> User:
        """``name`` as a request would load it now (grants under today's agreements)."""
        return self.ws.access.get_user(name)

    def search(self, who: str, galleries: tuple[str, ...], purpose: str = FELONY) -> SearchResult:
        return search(
            self.ws,
            self.user(who),
            SearchRequest(self.images / "008_smiling.jpg", galleries, purpose, "CASE-1", k=5),
        )


def _build(ws: Workspace, clock: Clock, images: Path) -> World:
    local = local_operator(ws, "root")
    op = ws.access.create_user("op", [Role.OPERATOR], by=local)
    users: dict[str, User] = {"op": op}
    for org in ("metro", "county", "state"):
        ws.orgs.create_org(org, org.title(), by=op)
        users[f"{org}-admin"] = ws.access.create_user(f"{org}-admin", [Role.ADMIN], by=op, org=org)
    for org in ("metro", "county", "state"):
        admin = users[f"{org}-admin"]
        for role in (Role.ENROLLER, Role.SEARCHER, Role.REVIEWER, Role.AUDITOR):
            name = f"{org}-{role}"
            users[name] = ws.access.create_user(name, [role], by=admin)
    for org, subjects in (("metro", ("005", "008", "030")), ("county", ("042", "061"))):
        admin = users[f"{org}-admin"]
        create_gallery(ws, admin, CreateGallery(f"{org}-mugs", "statute"))
        gallery = f"{org}-mugs"
        enroller = ws.access.grant(f"{org}-enroller", gallery, GrantLevel.ENROL, by=admin)
        for sid in subjects:
            enrol_image(ws, enroller, EnrolImage(gallery, sid, images / f"{sid}_neutral.jpg"))
        ws.access.grant(f"{org}-searcher", gallery, GrantLevel.SEARCH, by=admin)
        ws.access.grant(f"{org}-reviewer", gallery, GrantLevel.VIEW_IMAGES, by=admin)
    metro = users["metro-admin"]
    ws.orgs.define_purpose("metro", FELONY, "homicide, robbery, assault", by=metro)
    ws.orgs.define_purpose("metro", MISSING, "", by=metro)
    now = clock.now
    county_deal = ws.orgs.create_agreement(
        AgreementTerms(
            gallery="metro-mugs",
            grantee_org="county",
            purposes=(FELONY,),
            legal_basis="Interlocal agreement 2026-14",
            starts_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=365),
            max_candidates=1,
            redacted=True,
        ),
        by=metro,
    )
    state_deal = ws.orgs.create_agreement(
        AgreementTerms(
            gallery="metro-mugs",
            grantee_org="state",
            purposes=(MISSING,),
            legal_basis="State statute 12.3",
            starts_at=now - timedelta(days=1),
            expires_at=now + timedelta(days=1),
            level=GrantLevel.VIEW_IMAGES,
        ),
        by=metro,
    )
    for org in ("county", "state"):
        admin = users[f"{org}-admin"]
        ws.access.grant(f"{org}-searcher", "metro-mugs", GrantLevel.SEARCH, by=admin)
    ws.access.grant("state-reviewer", "metro-mugs", GrantLevel.VIEW_IMAGES, by=users["state-admin"])
    return World(ws, clock, users, {"county": county_deal.id, "state": state_deal.id}, images)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp(f"orgs-{request.param}")
    url = None
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    clock = Clock()
    ws = open_workspace(
        Settings(data_dir=folder, database_url=url, keep_enrolled_images=True), clock=clock
    )
    try:
        yield _build(ws, clock, data_dir / "london/images")
    finally:
        ws.close()


def test_a_search_across_own_and_shared_galleries_names_owners_caps_and_redacts(
    world: World,
) -> None:
    res = world.search("county-searcher", ("county-mugs", "metro-mugs"))
    assert res.owners == {"county-mugs": "county", "metro-mugs": "metro"}
    assert res.redacted == {"metro-mugs"}
    (face,) = res.faces
    shared = [c for c in face.candidates if c.gallery == "metro-mugs"]
    assert len(shared) == 1  # the agreement's cap, whatever k asked
    assert shared[0].external_id == REDACTED_SUBJECT and shared[0].template_id == 0
    assert [c.rank for c in face.candidates] == list(range(1, len(face.candidates) + 1))

    entry = world.ws.audit.get(res.audit_seq)
    audited = [c for c in entry.record.candidates if c.gallery == "metro-mugs"]
    assert audited and all(c.subject_id.startswith("redacted:") for c in audited)
    assert '"008"' not in json.dumps(entry.record.details)
    assert entry.record.details["agreements"] == {"metro-mugs": world.agreements["county"]}
    assert world.ws.audit.scopes(res.audit_seq) == {"county", "metro"}
    state_view = [e.seq for e in world.ws.audit.entries(scope="state")]
    assert res.audit_seq not in state_view
    assert res.audit_seq in [e.seq for e in world.ws.audit.entries(scope="metro")]


def test_a_purpose_outside_the_agreement_is_refused_and_nothing_is_recorded(
    world: World,
) -> None:
    before = world.ws.audit.head().seq
    with pytest.raises(PurposeOutsideAgreement):
        world.search("county-searcher", ("county-mugs", "metro-mugs"), purpose="burglary")
    assert world.ws.audit.head().seq == before
    # its own gallery takes any purpose
    world.search("county-searcher", ("county-mugs",), purpose="burglary")


def test_both_sides_see_the_search_and_the_owner_releases_the_lead(world: World) -> None:
    ws = world.ws
    res = world.search("county-searcher", ("county-mugs", "metro-mugs"))
    (rank,) = [c.rank for c in res.faces[0].candidates if c.gallery == "metro-mugs"]

    own = read_search(ws, world.user("county-auditor"), res.search_id)
    assert own.record.galleries == ("county-mugs", "metro-mugs")
    assert own.record.lead(rank).lead.subject_id == REDACTED_SUBJECT
    owner = read_search(ws, world.user("metro-auditor"), res.search_id)
    assert owner.record.galleries == ("metro-mugs",)  # nothing of county's own galleries
    assert [s.lead.subject_id for s in owner.record.leads] == ["008"]
    assert owner.record.requester_org == "county"
    with pytest.raises(PermissionDenied):
        read_search(ws, world.user("state-auditor"), res.search_id)
    metro_list = list_searches(ws, world.user("metro-auditor"), limit=100).items
    assert res.search_id in [v.record.search_id for v in metro_list]
    state_list = list_searches(ws, world.user("state-auditor"), limit=100).items
    assert res.search_id not in [v.record.search_id for v in state_list]

    with pytest.raises(PermissionDenied):  # county may not release metro's lead
        release_lead(ws, world.user("county-reviewer"), ReleaseLead(res.search_id, rank, "x"))
    state = release_lead(
        ws, world.user("metro-reviewer"), ReleaseLead(res.search_id, rank, "warrant 77 seen")
    )
    assert state.release is not None and state.release.released_by == "metro-reviewer"
    with pytest.raises(Conflict):
        release_lead(ws, world.user("metro-reviewer"), ReleaseLead(res.search_id, rank, "again"))
    seen = read_search(ws, world.user("county-searcher"), res.search_id)
    assert seen.record.lead(rank).lead.subject_id == "008"
    entry = next(ws.audit.entries(operation=AuditOp.LEAD_RELEASE, after_seq=res.audit_seq))
    assert entry.record.details["subject_id"] == "008"
    assert ws.audit.scopes(entry.seq) == {"county", "metro"}

    ws.reviews.first_look(world.user("metro-reviewer"), res.search_id, rank, "same")
    decided = ws.reviews.decide(
        world.user("metro-reviewer"), res.search_id, rank, "confirmed", "ok"
    )
    assert decided.status in (LeadStatus.AWAITING_SECOND, LeadStatus.CONFIRMED)
    assert ws.audit.verify().ok


def test_grants_and_management_stay_within_each_organisation(world: World) -> None:
    ws = world.ws
    county_admin = world.user("county-admin")
    with pytest.raises(PermissionDenied):  # above the agreement's level
        ws.access.grant("county-reviewer", "metro-mugs", GrantLevel.VIEW_IMAGES, by=county_admin)
    with pytest.raises(PermissionDenied):  # another organisation's user
        ws.access.grant("metro-searcher", "county-mugs", GrantLevel.SEARCH, by=county_admin)
    with pytest.raises(PermissionDenied):
        ws.access.deactivate("metro-searcher", by=county_admin)
    with pytest.raises(PermissionDenied):
        ws.access.create_user("x", [Role.SEARCHER], by=county_admin, org="metro")
    with pytest.raises(PermissionDenied):
        delete_gallery(ws, county_admin, DeleteGallery("metro-mugs", "mine now"))
    with pytest.raises(PermissionDenied):  # only the owner shares
        ws.orgs.create_agreement(
            AgreementTerms(
                "metro-mugs", "state", (FELONY,), "none", world.clock.now, world.clock.now
            ),
            by=county_admin,
        )
    with pytest.raises(PermissionDenied):  # an agreement never gives enrol
        ws.access.grant("county-enroller", "metro-mugs", GrantLevel.ENROL, by=county_admin)
    with pytest.raises(InvalidArgument):
        ws.orgs.create_agreement(
            AgreementTerms(
                "metro-mugs",
                "state",
                ("not a metro purpose",),
                "x",
                world.clock.now,
                world.clock.now + timedelta(days=1),
            ),
            by=world.user("metro-admin"),
        )
    names = {g.gallery.name for g in list_galleries(ws, county_admin)}
    assert names == {"county-mugs", "metro-mugs"}
    assert {g.gallery.name for g in list_galleries(ws, world.user("state-searcher"))} == {
        "metro-mugs"
    }


def test_the_operator_sees_no_faces_no_searches_and_no_audit(world: World) -> None:
    op = world.user("op")
    for operation, gallery in (
        (Operation.SEARCH, "metro-mugs"),
        (Operation.VIEW_IMAGES, "metro-mugs"),
        (Operation.READ_SEARCHES, None),
        (Operation.AUDIT_READ, None),
        (Operation.GALLERY_LIST, None),
    ):
        with pytest.raises(PermissionDenied):
            authorize(op, operation, gallery)
    with pytest.raises(PermissionDenied):
        world.ws.access.grant("op", "metro-mugs", GrantLevel.SEARCH, by=world.user("metro-admin"))
    with pytest.raises(InvalidArgument):  # the operator role is held alone
        world.ws.access.set_roles(
            "op", [Role.OPERATOR, Role.AUDITOR], by=local_operator(world.ws, "r")
        )


def test_images_of_a_shared_gallery_only_for_visible_leads(world: World) -> None:
    ws = world.ws
    res = world.search("state-searcher", ("metro-mugs",), purpose=MISSING)
    (lead,) = [c for c in res.faces[0].candidates if c.external_id == "008"]
    reviewer = world.user("state-reviewer")
    assert enrolled_image(ws, reviewer, "metro-mugs", lead.template_id).sha256
    others = [
        t.id
        for s in ws.store.list_subjects(
            ws.store.get_gallery_by_name("metro-mugs").id, limit=10
        ).items
        if s.external_id == "005"
        for t in ws.store.list_templates(s.id)
    ]
    with pytest.raises(PermissionDenied):  # no lead of state's: not theirs to browse
        enrolled_image(ws, reviewer, "metro-mugs", others[0])


def test_each_organisation_checks_its_own_erasure_receipts(world: World) -> None:
    ws = world.ws
    erased = erase_subject(
        ws, world.user("county-enroller"), EraseSubject("county-mugs", "061", "acquitted")
    )
    seq = erased.receipt.audit_seq
    assert check_erasure(ws, world.user("county-auditor"), seq).ok
    with pytest.raises(NotFound):  # metro's auditor: not theirs to see
        check_erasure(ws, world.user("metro-auditor"), seq)
    assert seq not in {e.seq for e in ws.audit.entries(scope="metro")}


def test_revocation_and_expiry_take_effect_on_the_next_request(world: World) -> None:
    ws = world.ws
    metro = world.user("metro-admin")
    searcher = world.user("county-searcher")
    assert searcher.level_on("metro-mugs") is GrantLevel.SEARCH
    ws.orgs.revoke_agreement(world.agreements["county"], "audit finding 3", by=metro)
    with pytest.raises(PermissionDenied):
        world.search("county-searcher", ("county-mugs", "metro-mugs"))
    world.search("county-searcher", ("county-mugs",))  # its own gallery still
    with pytest.raises(Conflict):
        ws.orgs.change_agreement(world.agreements["county"], {"max_candidates": 3}, by=metro)

    assert world.user("state-searcher").level_on("metro-mugs") is GrantLevel.SEARCH
    seen = world.search("state-searcher", ("metro-mugs",), purpose=MISSING)
    template = next(c.template_id for c in seen.faces[0].candidates if c.external_id == "008")
    stale_searcher, stale_reviewer = world.user("state-searcher"), world.user("state-reviewer")
    world.clock.now += timedelta(days=2)
    # users loaded before the expiry (a service caches them for a few seconds) are refused too
    with pytest.raises(PermissionDenied):
        search(
            ws,
            stale_searcher,
            SearchRequest(world.images / "008_smiling.jpg", ("metro-mugs",), MISSING, "C-2"),
        )
    with pytest.raises(PermissionDenied):
        enrolled_image(ws, stale_reviewer, "metro-mugs", template)
    assert world.user("state-searcher").level_on("metro-mugs") is None
    with pytest.raises(PermissionDenied):
        world.search("state-searcher", ("metro-mugs",), purpose=MISSING)
    local = local_operator(ws, "root")
    assert ws.orgs.audit_expired(by=dataclasses.replace(local, id="service:agreements")) == [
        world.agreements["state"]
    ]
    assert ws.orgs.audit_expired(by=local) == []
    ops = [e.record.operation for e in ws.audit.entries(scope="state")]
    assert ops.count(AuditOp.AGREEMENT_EXPIRE) == 1
    assert ops.count(AuditOp.AGREEMENT_CREATE) == 1
    assert AuditOp.AGREEMENT_REVOKE not in ops  # county's revocation is not state's business
    assert ws.audit.verify().ok
