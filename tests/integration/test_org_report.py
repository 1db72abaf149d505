"""Lead-rate reports and audit views per organisation: three organisations, a sharing
agreement, searches on both sides and review decisions, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faceledger import Settings
from faceledger.access import Role, User
from faceledger.access.orgs import AgreementTerms
from faceledger.access.policy import GrantLevel
from faceledger.audit import verify_jsonl
from faceledger.errors import NotFound, PermissionDenied
from faceledger.gallery import local_operator, open_workspace
from faceledger.gallery.workspace import Workspace
from faceledger.usecases import (
    AuditQuery,
    CreateGallery,
    EnrolImage,
    OrgReportRequest,
    SearchRequest,
    SearchResult,
    audit_entries,
    audit_entry,
    create_gallery,
    enrol_image,
    export_audit,
    org_report,
    render_org_report_html,
    search,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    ws: Workspace
    clock: Clock
    users: dict[str, User]
    searches: dict[str, SearchResult]
    agreement: str


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path, data_dir: Path) -> Iterator[World]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
    else:
        cluster = request.getfixturevalue("pg_cluster")
        settings = Settings(data_dir=tmp_path, database_url=cluster.create_database())
    clock = Clock()
    ws = open_workspace(settings, clock=clock)
    try:
        yield _build(ws, clock, data_dir / "london/images")
    finally:
        ws.close()


def _build(ws: Workspace, clock: Clock, img: Path) -> World:
    op = local_operator(ws, "t")
    users: dict[str, User] = {}
    for org in ("alpha", "beta", "gamma"):
        ws.orgs.create_org(org, org.title(), by=op)
        for role in (Role.SEARCHER, Role.AUDITOR, Role.ENROLLER):
            name = f"{org}-{role}"
            users[name] = ws.access.create_user(name, [role], by=op, org=org)
    for name in ("alpha-rev1", "alpha-rev2"):
        users[name] = ws.access.create_user(name, [Role.REVIEWER], by=op, org="alpha")
    subjects = {"ga": ("alpha", ("005", "008", "030")), "gb": ("beta", ("042",))}
    subjects["gc"] = ("gamma", ("062",))
    for gallery, (org, sids) in subjects.items():
        create_gallery(ws, op, CreateGallery(gallery, "statute", org=org))
        enroller = ws.access.grant(f"{org}-enroller", gallery, GrantLevel.ENROL, by=op)
        for sid in sids:
            enrol_image(ws, enroller, EnrolImage(gallery, sid, img / f"{sid}_neutral.jpg"))
        users[f"{org}-searcher"] = ws.access.grant(
            f"{org}-searcher", gallery, GrantLevel.SEARCH, by=op
        )
    for name in ("alpha-rev1", "alpha-rev2"):
        users[name] = ws.access.grant(name, "ga", GrantLevel.VIEW_IMAGES, by=op)
    ws.orgs.define_purpose("alpha", "missing person", "finding missing people", by=op)
    agreement = ws.orgs.create_agreement(
        AgreementTerms(
            "ga",
            "beta",
            ("missing person",),
            "statute",
            T0 - timedelta(days=1),
            T0 + timedelta(days=60),
        ),
        by=op,
    )
    users["beta-searcher"] = ws.access.grant("beta-searcher", "ga", GrantLevel.SEARCH, by=op)

    def run(key: str, who: str, probe: str, gallery: str) -> None:
        clock.now += timedelta(hours=1)
        req = SearchRequest(img / f"{probe}_smiling.jpg", (gallery,), "missing person", key)
        searches[key] = search(ws, users[who], req)

    searches: dict[str, SearchResult] = {}
    run("s1", "beta-searcher", "008", "ga")  # cross-org, under the agreement
    run("s2", "beta-searcher", "042", "gb")  # beta's own
    run("s3", "alpha-searcher", "030", "ga")  # alpha's own
    run("s4", "gamma-searcher", "062", "gc")  # unrelated to alpha
    clock.now += timedelta(days=7)  # the next week
    run("s5", "beta-searcher", "010", "ga")  # cross-org, not enrolled
    clock.now += timedelta(hours=2)
    for rev, key in (("alpha-rev1", "s1"), ("alpha-rev2", "s1"), ("alpha-rev1", "s3")):
        ws.reviews.first_look(users[rev], searches[key].search_id, 1, "same")
    ws.reviews.decide(users["alpha-rev1"], searches["s1"].search_id, 1, "confirmed", "same")
    clock.now += timedelta(hours=1)
    ws.reviews.decide(users["alpha-rev2"], searches["s1"].search_id, 1, "confirmed", "agree")
    ws.reviews.decide(users["alpha-rev1"], searches["s3"].search_id, 1, "rejected", "no")
    clock.now += timedelta(hours=1)
    return World(ws, clock, users, searches, agreement.id)


def _leads(w: World, key: str) -> int:
    return sum(len(f.candidates) for f in w.searches[key].faces)


def _period() -> tuple[datetime, datetime]:
    return T0, T0 + timedelta(days=30)


def test_org_report_counts_what_was_done(world: World) -> None:
    w = world
    ws = w.ws
    leads = {k: _leads(w, k) for k in w.searches}
    assert leads["s1"] >= 1 and leads["s3"] >= 1
    assert w.searches["s1"].faces[0].candidates[0].external_id == "008"
    start, end = _period()
    alpha = org_report(ws, w.users["alpha-auditor"], OrgReportRequest(None, start, end))
    assert alpha.org == "alpha"
    t = alpha.total
    assert t.searches == 3  # s1, s3, s5: every search of ga
    assert t.faces == 3
    assert t.leads == leads["s1"] + leads["s3"] + leads["s5"]
    with_leads = sum(1 for k in ("s1", "s3", "s5") if leads[k])
    assert t.searches_with_leads == with_leads
    assert t.lead_rate.k == with_leads and t.lead_rate.n == 3
    assert t.lead_rate.low <= with_leads / 3 <= t.lead_rate.high
    assert t.confirmed_rate.k == 1 and t.confirmed_rate.n == 3
    assert t.outcomes["confirmed"] == 1 and t.outcomes["rejected"] == 1
    assert t.outcomes["pending"] == t.leads - 2
    s1_wait = 7 * 24 + 6  # s1 ran at +1 h, was first confirmed at +7 d 7 h
    s3_wait = 7 * 24 + 5  # s3 ran at +3 h, was rejected at +7 d 8 h
    assert t.median_hours_to_first_decision == pytest.approx((s1_wait + s3_wait) / 2)
    assert alpha.as_owner is not None and alpha.as_requester is not None
    assert alpha.as_owner.searches == 2 and alpha.as_requester.searches == 1
    assert alpha.as_owner.confirmed_rate.k == 1
    assert alpha.as_requester.outcomes["rejected"] == 1
    assert set(alpha.by_requester) == {"alpha", "beta"}
    assert alpha.by_requester["beta"].searches == 2
    assert set(alpha.by_agreement) == {w.agreement, "none"}
    assert alpha.by_agreement[w.agreement].searches == 2
    assert alpha.by_agreement["none"].searches == 1
    assert [(x.searches, x.with_confirmed) for x in alpha.weekly] == [(2, 1), (1, 0)]

    beta = org_report(ws, w.users["beta-auditor"], OrgReportRequest("beta", start, end))
    assert beta.total.searches == 3  # s1, s2, s5
    assert beta.as_owner is not None and beta.as_owner.searches == 0
    assert beta.as_requester is not None and beta.as_requester.searches == 3
    assert beta.total.leads == leads["s1"] + leads["s2"] + leads["s5"]

    shared = org_report(
        ws, w.users["beta-auditor"], OrgReportRequest(None, start, end, w.agreement)
    )
    assert shared.total.searches == 2 and shared.total.confirmed_rate.k == 1
    everyone = org_report(ws, local_operator(ws, "t"), OrgReportRequest(None, start, end))
    assert everyone.total.searches == 5 and everyone.total.faces == 5
    assert set(everyone.by_requester) == {"alpha", "beta", "gamma"}

    gamma = w.users["gamma-auditor"]
    with pytest.raises(PermissionDenied):
        org_report(ws, gamma, OrgReportRequest("alpha", start, end))
    with pytest.raises(PermissionDenied):
        org_report(ws, gamma, OrgReportRequest(None, start, end, w.agreement))
    with pytest.raises(PermissionDenied):
        org_report(ws, w.users["alpha-searcher"], OrgReportRequest("alpha", start, end))

    data = json.loads(json.dumps(alpha.to_json()))
    assert data["total"]["searches"] == 3 and data["org"] == "alpha"
    page = render_org_report_html(alpha)
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "<script" not in page


def test_an_org_auditor_reads_its_own_view(world: World) -> None:
    w = world
    ws = w.ws
    alpha_auditor = w.users["alpha-auditor"]
    seen = {e.seq for e in audit_entries(ws, alpha_auditor, AuditQuery())}
    beta_seen = {e.seq for e in audit_entries(ws, w.users["beta-auditor"], AuditQuery())}
    s = {k: r.audit_seq for k, r in w.searches.items()}
    assert s["s1"] in seen and s["s1"] in beta_seen  # both sides of the cross-org search
    assert s["s3"] in seen and s["s3"] not in beta_seen
    assert s["s2"] not in seen and s["s4"] not in seen
    assert audit_entry(ws, alpha_auditor, s["s1"]).record.operation == "search"
    with pytest.raises(NotFound):
        audit_entry(ws, alpha_auditor, s["s4"])
    everything = [e.seq for e in ws.audit.entries()]
    assert {e.seq for e in audit_entries(ws, local_operator(ws, "t"), AuditQuery())} == set(
        everything
    )

    buf = io.StringIO()
    assert export_audit(ws, alpha_auditor, buf) == len(everything)
    lines = buf.getvalue().splitlines()
    stubs = [json.loads(x) for x in lines if '"withheld":true' in x]
    assert {x["seq"] for x in stubs} == set(everything) - seen
    assert all(set(x) == {"seq", "prev_hash", "hash", "signature", "withheld"} for x in stubs)
    report = verify_jsonl(lines)
    assert report.ok, report.reason
    assert report.entries == len(everything) and report.withheld_entries == len(stubs)

    edited = list(lines)
    i = next(n for n, x in enumerate(edited) if f'"seq":{s["s1"]},' in x and "body" in x)
    edited[i] = edited[i].replace('"case_ref":"s1"', '"case_ref":"s9"')
    assert edited[i] != lines[i]
    broken = verify_jsonl(edited)
    assert not broken.ok and broken.first_bad_position == s["s1"]
    stub_i = next(n for n, x in enumerate(lines) if '"withheld":true' in x)
    dropped = lines[:stub_i] + lines[stub_i + 1 :]
    assert not verify_jsonl(dropped).ok
