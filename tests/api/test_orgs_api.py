"""Organisations and sharing agreements over HTTP on real images: an operator makes two
organisations and their administrators; one shares its gallery with the other (search only,
one purpose, one candidate, redacted); the other's searcher searches both galleries in one
call and sees whose each lead is, redacted until the owner's reviewer releases it; a purpose
outside the agreement, a revoked and an expired agreement are refused; the operator sees no
search and no audit; an administrator manages nothing of another organisation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceledger.access import Role
from faceledger.api.concurrency import SerialEngine
from faceledger.audit import utc_now
from faceledger.gallery.workspace import local_operator
from faceledger.review import REDACTED_SUBJECT
from tests.api.live import Deployment, Live, deploy, serve
from tests.postgres import PostgresCluster

API = "/api/v1"
VIOLENT = "violent felony investigation"
METRO_GALLERY = "metro-mugshots"
COUNTY_GALLERY = "county-local"


class Clock:
    """The workspace's clock, which the test moves on to let an agreement expire."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> Any:
        return self.now


class Actors:
    """API keys by account id, and requests made as one of them."""

    def __init__(self, c: httpx.Client, dep: Deployment) -> None:
        self.c = c
        self.tokens = dict(dep.tokens)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.c.request(method, API + path, headers=self.h(who), **kw)

    def ok(self, who: str, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.call(who, method, path, **kw)
        assert r.status_code == status, r.text
        return r.json()

    def refused(self, who: str, method: str, path: str, code: str, **kw: Any) -> None:
        r = self.call(who, method, path, **kw)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == code, r.text

    def new_user(self, by: str, uid: str, role: str, org: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": uid, "roles": [role]}
        if org is not None:
            body["org"] = org
        created = self.ok(by, "POST", "/users", 201, json=body)
        key = self.ok(by, "POST", f"/users/{uid}/keys", 201, json={})
        self.tokens[uid] = key["token"]
        return dict(created)

    def search(self, who: str, image: bytes, galleries: list[str], purpose: str) -> httpx.Response:
        return self.call(
            who,
            "POST",
            "/search",
            files={"image": ("probe.jpg", image, "image/jpeg")},
            data={"galleries": galleries, "purpose": purpose, "case_ref": "CASE-7"},
        )


def _enrol(a: Actors, who: str, gallery: str, london: dict[str, bytes], stems: list[str]) -> None:
    files = [("images", (f"{s}.jpg", london[s], "image/jpeg")) for s in stems]
    subjects = [s.split("_")[0] for s in stems]
    out = a.ok(
        who,
        "POST",
        f"/galleries/{gallery}/enrolments",
        files=files,
        data={"subjects": subjects},
    )
    assert [i["status"] for i in out["items"]] == ["enrolled"] * len(stems), out


def _agreement(start_h: float, end_h: float, clock: Clock, **extra: Any) -> dict[str, Any]:
    return {
        "gallery": METRO_GALLERY,
        "grantee_org": "county",
        "purposes": [VIOLENT],
        "legal_basis": "data sharing agreement DSA-7",
        "starts_at": (clock.now + timedelta(hours=start_h)).isoformat(),
        "expires_at": (clock.now + timedelta(hours=end_h)).isoformat(),
        **extra,
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_gallery_shared_between_organisations_end_to_end(
    backend: str,
    tmp_path: Path,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
    request: pytest.FixtureRequest,
) -> None:
    url = None
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("pg")
        url = cluster.create_database()
    clock = Clock()
    dep = deploy(
        tmp_path / "ws",
        serial_engine,
        database_url=url,
        gallery=None,
        users=("admin",),
        clock=clock,
    )
    # the deployment's operator: an account of its own (it holds no other role)
    root = local_operator(dep.ws, "setup")
    dep.ws.access.create_user("operator", [Role.OPERATOR], by=root)
    dep.tokens["operator"] = dep.ws.access.issue_api_key("operator", by=root).token
    try:
        with serve(dep) as live, live.client() as c:
            _scenario(Actors(c, dep), live, clock, london)
    finally:
        dep.ws.close()


def _scenario(a: Actors, live: Live, clock: Clock, london: dict[str, bytes]) -> None:
    # -- the operator makes the organisations and their first administrators
    for org, name in (("metro", "Metro Police"), ("county", "County Sheriff")):
        made = a.ok("operator", "POST", "/orgs", 201, json={"org_id": org, "display_name": name})
        assert made["org_id"] == org and made["created_at"]
        assert a.new_user("operator", f"{org}-admin", "admin", org)["org"] == org
    assert {o["org_id"] for o in a.ok("operator", "GET", "/orgs")} == {"default", "metro", "county"}
    a.refused("metro-admin", "POST", "/orgs", "permission_denied", json={"org_id": "x"})
    # the operator manages administrators, not other accounts
    r = a.call("operator", "POST", "/users", json={"id": "op-made", "roles": ["searcher"]})
    assert r.status_code == 403, r.text

    # -- each administrator: a gallery, users (in their own organisation), grants, purposes
    for org, gallery in (("metro", METRO_GALLERY), ("county", COUNTY_GALLERY)):
        admin = f"{org}-admin"
        a.ok(admin, "POST", "/galleries", 201, json={"name": gallery, "legal_basis": "warrant"})
        for role, level in (("enroller", "enrol"), ("searcher", "search"), ("reviewer", None)):
            assert a.new_user(admin, f"{org}-{role}", role)["org"] == org
            a.ok(
                admin,
                "PUT",
                f"/galleries/{gallery}/grants/{org}-{role}",
                json={"level": level or "view_images"},
            )
    for name in (VIOLENT, "fraud"):
        out = a.ok("metro-admin", "POST", "/orgs/metro/purposes", 201, json={"name": name})
        assert out == {"org": "metro", "name": name, "description": ""}
    a.refused(
        "county-admin", "POST", "/orgs/metro/purposes", "permission_denied", json={"name": "x"}
    )
    _enrol(a, "metro-enroller", METRO_GALLERY, london, ["001_neutral", "002_neutral"])
    _enrol(a, "county-enroller", COUNTY_GALLERY, london, ["003_neutral", "004_neutral"])

    # -- an administrator manages nothing of another organisation
    assert {u["org"] for u in a.ok("county-admin", "GET", "/users")} == {"county"}
    for method, path in (
        ("POST", "/users/metro-reviewer/deactivate"),
        ("POST", "/users/metro-reviewer/keys"),
        ("GET", "/users/metro-reviewer/keys"),
    ):
        kw: dict[str, Any] = {"json": {}} if method == "POST" else {}
        a.refused("county-admin", method, path, "permission_denied", **kw)
    r = a.call(
        "county-admin", "POST", "/users", json={"id": "z", "roles": ["searcher"], "org": "metro"}
    )
    assert r.status_code == 403, r.text
    # ... nor shares another's gallery, nor grants on it before an agreement
    a.refused(
        "county-admin", "POST", "/agreements", "permission_denied", json=_agreement(-1, 24, clock)
    )
    r = a.call(
        "county-admin",
        "PUT",
        f"/galleries/{METRO_GALLERY}/grants/county-searcher",
        json={"level": "search"},
    )
    assert r.status_code == 403, r.text

    # -- metro shares its gallery with county: search, one purpose, one candidate, redacted
    terms = _agreement(-1, 24 * 30, clock, level="search", max_candidates=1, redacted=True)
    agreement = a.ok("metro-admin", "POST", "/agreements", 201, json=terms)
    aid = agreement["agreement_id"]
    assert agreement["state"] == "active" and agreement["owner_org"] == "metro"
    assert agreement["purposes"] == [VIOLENT] and agreement["max_candidates"] == 1
    assert agreement["redacted"] is True and agreement["created_by"] == "metro-admin"
    assert agreement["revoked_at"] is None
    assert [x["agreement_id"] for x in a.ok("county-admin", "GET", "/agreements")] == [aid]
    assert a.ok("county-admin", "GET", f"/agreements/{aid}")["grantee_org"] == "county"
    # county's administrator sees metro's purposes now (a party), and changes nothing of it
    assert {p["name"] for p in a.ok("county-admin", "GET", "/orgs/metro/purposes")} == {
        VIOLENT,
        "fraud",
    }
    a.refused(
        "county-admin", "PATCH", f"/agreements/{aid}", "permission_denied", json={"redacted": False}
    )
    a.refused(
        "county-admin",
        "POST",
        f"/agreements/{aid}/revoke",
        "permission_denied",
        json={"reason": "x"},
    )
    changed = a.ok("metro-admin", "PATCH", f"/agreements/{aid}", json={"legal_basis": "DSA-7 v2"})
    assert changed["legal_basis"] == "DSA-7 v2" and changed["max_candidates"] == 1
    # a partner may grant up to the agreement's level, no more
    r = a.call(
        "county-admin",
        "PUT",
        f"/galleries/{METRO_GALLERY}/grants/county-searcher",
        json={"level": "view_images"},
    )
    assert r.status_code == 403, r.text
    a.ok(
        "county-admin",
        "PUT",
        f"/galleries/{METRO_GALLERY}/grants/county-searcher",
        json={"level": "search"},
    )

    # -- county's searcher searches its own and the shared gallery in one call
    both = [COUNTY_GALLERY, METRO_GALLERY]
    r = a.search("county-searcher", london["001_smiling"], both, VIOLENT)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["gallery_owners"] == {COUNTY_GALLERY: "county", METRO_GALLERY: "metro"}
    assert out["redacted_galleries"] == [METRO_GALLERY]
    shared = [x for x in out["faces"][0]["candidates"] if x["gallery"] == METRO_GALLERY]
    assert len(shared) == 1  # max_candidates
    assert shared[0]["subject"] == REDACTED_SUBJECT and shared[0]["display_name"] is None
    assert shared[0]["template_id"] == 0
    sid = out["search_id"]
    record = a.ok("county-searcher", "GET", f"/searches/{sid}")
    (lead,) = [x for x in record["leads"] if x["gallery"] == METRO_GALLERY]
    assert lead["owner_org"] == "metro" and lead["redacted"] is True
    assert lead["subject"] == REDACTED_SUBJECT and lead["template_id"] is None
    assert lead["released_by"] is None and lead["released_at"] is None
    own = [x for x in record["leads"] if x["gallery"] == COUNTY_GALLERY]
    assert all(x["owner_org"] == "county" and not x["redacted"] for x in own)

    # a purpose the agreement does not allow (metro's own, or none of metro's)
    for purpose in ("fraud", "shoplifting"):
        r = a.search("county-searcher", london["001_smiling"], both, purpose)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "purpose_outside_agreement", r.text
    # metro's reviewer sees the subject; county's does not review metro's lead
    queue = a.ok("metro-reviewer", "GET", "/reviews/queue")["items"]
    assert sid in {x["search_id"] for x in queue}
    seen = a.ok("metro-reviewer", "GET", f"/searches/{sid}")
    (theirs,) = seen["leads"]
    assert theirs["subject"] == "001" and theirs["redacted"] is False
    rank = theirs["rank"]

    # -- release: only a reviewer of the owner; then county's searcher sees the subject
    release = {"json": {"note": "county shown the match: same case"}}
    path = f"/searches/{sid}/leads/{rank}/release"
    a.refused("county-reviewer", "POST", path, "permission_denied", **release)
    a.refused("county-searcher", "POST", path, "permission_denied", **release)
    released = a.ok("metro-reviewer", "POST", path, **release)
    assert released["released_by"] == "metro-reviewer" and released["released_at"]
    assert released["owner_org"] == "metro" and released["subject"] == "001"
    assert a.call("metro-reviewer", "POST", path, **release).status_code == 409
    record = a.ok("county-searcher", "GET", f"/searches/{sid}")
    (lead,) = [x for x in record["leads"] if x["gallery"] == METRO_GALLERY]
    assert lead["subject"] == "001" and lead["redacted"] is False
    assert lead["released_by"] == "metro-reviewer"

    # -- revoked: the next search of that gallery is refused
    revoked = a.ok("metro-admin", "POST", f"/agreements/{aid}/revoke", json={"reason": "ended"})
    assert revoked["state"] == "revoked" and revoked["revoked_by"] == "metro-admin"
    r = a.search("county-searcher", london["001_smiling"], [METRO_GALLERY], VIOLENT)
    assert r.status_code == 403, r.text
    assert (
        a.call("metro-admin", "PATCH", f"/agreements/{aid}", json={"redacted": False}).status_code
        == 409
    )

    # -- expired: a new agreement works until its expiry, then not
    second = a.ok("metro-admin", "POST", "/agreements", 201, json=_agreement(-1, 1, clock))
    r = a.search("county-searcher", london["001_smiling"], [METRO_GALLERY], VIOLENT)
    assert r.status_code == 200, r.text
    assert r.json()["redacted_galleries"] == []
    clock.now += timedelta(hours=2)
    # no cache clearing: a shared gallery's agreement is read again at every request
    assert (
        a.ok("county-admin", "GET", f"/agreements/{second['agreement_id']}")["state"] == "expired"
    )
    r = a.search("county-searcher", london["001_smiling"], [METRO_GALLERY], VIOLENT)
    assert r.status_code == 403, r.text
    # county's own gallery is unaffected
    r = a.search("county-searcher", london["003_smiling"], [COUNTY_GALLERY], "any purpose")
    assert r.status_code == 200, r.text

    # -- the operator sees no search, no review and no audit
    a.refused("operator", "GET", "/searches", "permission_denied")
    a.refused("operator", "GET", f"/searches/{sid}", "permission_denied")
    a.refused("operator", "GET", "/audit/entries", "permission_denied")
    r = a.search("operator", london["001_smiling"], [COUNTY_GALLERY], VIOLENT)
    assert r.status_code == 403, r.text

    # -- both organisations' auditors: the lead-rate report, as JSON and HTML
    for org in ("metro", "county"):
        a.new_user(f"{org}-admin", f"{org}-auditor", "auditor")
    period = {
        "from": (clock.now - timedelta(days=2)).isoformat(),
        "to": (clock.now + timedelta(hours=1)).isoformat(),
    }
    owner = a.ok("metro-auditor", "GET", "/audit/report/orgs", params={**period, "org": "metro"})
    by_county = owner["by_requester"]["county"]
    assert by_county["searches"] >= 2 and by_county["lead_rate"]["n"] == by_county["searches"]
    assert owner["as_owner"]["searches"] >= by_county["searches"]
    assert aid in owner["by_agreement"]
    r = a.call("metro-auditor", "GET", "/audit/report/orgs", params={**period, "format": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<img" in r.text
    a.refused(
        "county-auditor", "GET", "/audit/report/orgs", "permission_denied",
        params={**period, "org": "metro"},
    )  # fmt: skip
    mine = a.ok("county-auditor", "GET", "/audit/report/orgs", params=period)
    assert mine["org"] == "county" and mine["as_requester"]["searches"] >= by_county["searches"]
