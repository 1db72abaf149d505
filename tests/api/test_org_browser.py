"""Organisations and sharing agreements in a real browser (Chromium driven by Playwright): the
operator sees and creates organisations; metro's administrator defines a purpose and shares a
gallery with county, redacted, through the forms; county's searcher searches it (through the
API) and sees the lead redacted; metro's reviewer sees whose the lead is and releases it;
county's searcher then sees the subject."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from faceledger import usecases as uc
from faceledger.access import GrantLevel, Role
from faceledger.api.concurrency import SerialEngine
from faceledger.gallery.workspace import local_operator
from tests.api.live import (
    Deployment,
    Live,
    axe_violations,
    deploy,
    serve,
    sign_in,
    watched_page,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
GALLERY = "metro-wanted"
ENROL = ["001", "002", "003", "004"]
PURPOSE = "missing persons"
PEOPLE: dict[str, tuple[Role, str]] = {
    "operator": (Role.OPERATOR, "default"),
    "metro-admin": (Role.ADMIN, "metro"),
    "metro-reviewer": (Role.REVIEWER, "metro"),
    "county-searcher": (Role.SEARCHER, "county"),
}


@pytest.fixture
def site(
    tmp_path: Path, serial_engine: SerialEngine, data_dir: Path
) -> Iterator[tuple[Live, Deployment]]:
    """Organisations metro and county, their people with keys, and metro's gallery of four
    London subjects; county's searcher holds a search grant on it, which applies only once an
    agreement shares the gallery with county."""
    images = data_dir / "london" / "images"
    dep = deploy(
        tmp_path / "ws", serial_engine, gallery=None, users=("admin",), keep_enrolled_images=True
    )
    ws = dep.ws
    setup = local_operator(ws, "setup")
    ws.orgs.create_org("metro", "Metropolitan Police", by=setup)
    ws.orgs.create_org("county", "County Constabulary", by=setup)
    for name, (role, org) in PEOPLE.items():
        ws.access.create_user(name, [role], by=setup, org=org)
        dep.tokens[name] = ws.access.issue_api_key(name, by=setup).token
    uc.create_gallery(ws, setup, uc.CreateGallery(GALLERY, legal_basis="warrant", org="metro"))
    setup = local_operator(ws, "setup")  # now with an enrol grant on the new gallery
    for person in ENROL:
        uc.enrol_image(ws, setup, uc.EnrolImage(GALLERY, person, images / f"{person}_neutral.jpg"))
    ws.access.grant("metro-reviewer", GALLERY, GrantLevel.VIEW_IMAGES, by=setup)
    ws.access.grant("county-searcher", GALLERY, GrantLevel.SEARCH, by=setup)
    try:
        with serve(dep) as live:
            yield live, dep
    finally:
        ws.close()


def test_sharing_agreement_and_release_in_a_browser(
    browser: Browser, site: tuple[Live, Deployment], data_dir: Path
) -> None:
    live, dep = site
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page
    nav = page.locator("#nav")

    # the operator: organisations only
    sign_in(page, live, dep, "operator")
    expect(page).to_have_url(re.compile(r"#/orgs$"))
    expect(page.locator("h1")).to_have_text("Organisations")
    expect(nav.get_by_role("link", name="Organisations")).to_be_visible()
    expect(nav.get_by_role("link", name="Agreements")).to_be_hidden()
    expect(page.locator("#orgs tr[data-org=metro]")).to_contain_text("Metropolitan Police")
    page.get_by_label("Organisation id").fill("state")
    page.get_by_label("Display name").fill("State Police")
    page.click("#org-submit")
    expect(page.locator("#orgs tr[data-org=state]")).to_contain_text("State Police")

    # metro's administrator: a purpose category, then the gallery shared with county, redacted
    sign_in(page, live, dep, "metro-admin")
    expect(page.locator("#who")).to_contain_text("metro")
    expect(nav.get_by_role("link", name="Organisations")).to_be_hidden()
    page.click("#nav a[href='#/purposes']")
    expect(page.locator("h1")).to_have_text("Purposes of metro")
    page.get_by_label("Name").fill(PURPOSE)
    page.get_by_label("Description").fill("finding people reported missing")
    page.click("#purpose-submit")
    expect(page.locator("#purposes")).to_contain_text(PURPOSE)

    page.click("#nav a[href='#/agreements']")
    expect(page.locator("h1")).to_have_text("Sharing agreements of metro")
    expect(page.locator("#agreements")).to_contain_text("No agreement yet")
    gallery = page.get_by_label("Gallery")
    expect(gallery).to_have_value("")  # nothing shared until a gallery is chosen
    expect(page.locator("#agreement-level-view")).not_to_be_checked()
    gallery.select_option(GALLERY)
    page.get_by_label("Organisation it is shared with").fill("county")
    page.get_by_label(PURPOSE).check()
    page.get_by_label("Legal basis").fill("data sharing agreement DSA-2025-07")
    expiry = (date.today() + timedelta(days=30)).isoformat()
    page.get_by_label("Expires (00:00 local time on)").fill(expiry)
    page.get_by_label("Most candidates per face").fill("5")
    page.check("#agreement-redacted")
    page.click("#agreement-submit")
    row = page.locator(f"#agreements tr[data-gallery={GALLERY}][data-grantee=county]")
    expect(row.locator(".state")).to_have_attribute("data-state", "active")
    expect(row).to_contain_text("redacted until released")
    expect(row).to_contain_text(PURPOSE)
    row.locator("summary").click()
    expect(row.locator("form.agreement-revoke")).to_be_visible()
    assert axe_violations(page) == []  # the table, an agreement's actions open, the form
    page.screenshot(path=str(ARTIFACTS / "agreements.png"), full_page=True)

    # county's searcher searches metro's gallery (through the API): the lead is redacted
    probe = (data_dir / "london" / "images" / "001_smiling.jpg").read_bytes()
    with live.client() as client:
        res = client.post(
            "/api/v1/search",
            headers=dep.headers("county-searcher"),
            files={"image": ("probe.jpg", probe, "image/jpeg")},
            data={"galleries": [GALLERY], "purpose": PURPOSE, "case_ref": "MP-2025-3"},
        )
    assert res.status_code == 200, res.text
    found = res.json()
    assert found["gallery_owners"] == {GALLERY: "metro"}
    assert found["redacted_galleries"] == [GALLERY]
    search_url = f"{live.url}/ui/#/searches/{found['search_id']}"
    with live.client() as client:
        seen = client.get(
            f"/api/v1/searches/{found['search_id']}", headers=dep.headers("metro-reviewer")
        ).json()
    # the owner's reviewer sees the subject, and that it is withheld from county
    assert seen["requester_org"] == "county" and seen["redacted_galleries"] == [GALLERY]
    assert seen["leads"][0]["withheld"] and not seen["leads"][0]["redacted"]

    sign_in(page, live, dep, "county-searcher")
    page.goto(f"{live.url}/ui/#/search")  # the shared gallery is offered, named as shared
    expect(page.get_by_label(f"{GALLERY} (shared by metro)")).to_be_checked()
    page.goto(search_url)
    lead = page.locator("#lead-1")
    expect(lead.locator(".owner")).to_have_text("owned by metro")
    expect(lead.locator(".redaction")).to_have_text("[redacted] — withheld by metro until released")
    expect(lead.locator(".noimage")).to_contain_text("withheld by metro")
    expect(lead.locator("figure.enrolled")).to_have_count(0)
    expect(lead).not_to_contain_text("subject 001")

    # metro's reviewer: sees the subject, whose it is, and releases it to county
    sign_in(page, live, dep, "metro-reviewer")
    page.goto(search_url)
    # blind review: the two faces first, without subject or score, then the first look
    expect(lead).to_have_attribute("data-blind", "true")
    expect(lead).not_to_contain_text("subject 001")
    page.check("#look-1-same")
    page.click("#first-look-1")
    expect(lead).to_have_attribute("data-blind", "false")
    expect(lead).to_contain_text("subject 001")
    expect(lead.locator(".owner")).to_have_text("owned by metro")
    expect(lead.locator(".redaction")).to_have_attribute("data-state", "withheld-from-requester")
    expect(lead.locator("figure.enrolled img").first).to_be_visible()
    release = page.locator("#release-1")
    expect(release).to_contain_text("Release to county")
    page.get_by_label(re.compile("^Why county may see this subject")).fill("missing person case")
    release.click()
    released = lead.locator(".redaction")
    expect(released).to_have_attribute("data-state", "released")
    expect(released).to_contain_text("released by metro-reviewer at")
    expect(page.locator("#release-1")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "lead-released.png"), full_page=True)

    # county's searcher now sees the subject
    sign_in(page, live, dep, "county-searcher")
    page.goto(search_url)
    expect(lead).to_contain_text("subject 001")
    expect(lead.locator(".redaction")).to_contain_text("released by metro-reviewer")
    context.close()

    watched.assert_clean()
    (state,) = dep.ws.reviews.searches()[0].leads[:1]
    assert state.release is not None and state.release.released_by == "metro-reviewer"
