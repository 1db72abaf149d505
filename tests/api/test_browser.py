"""The review UI in a real browser (Debian's Chromium driven by Playwright): an administrator
creates a gallery and grants, an enroller enrols London images, a searcher searches with a
purpose, two reviewers confirm the lead, and an auditor sees the entries and verifies the
chain. Screenshots land in ``test-artifacts/`` (kept by CI as artifacts)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from faceledger.api.concurrency import SerialEngine
from tests.api.live import Deployment, Live, deploy, serve, sign_in, watched_page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
ENROL = ["001_neutral", "002_neutral", "003_neutral", "004_neutral"]


@pytest.fixture
def site(tmp_path: Path, serial_engine: SerialEngine) -> Iterator[tuple[Live, Deployment]]:
    dep = deploy(tmp_path / "ws", serial_engine, gallery=None)
    try:
        with serve(dep) as live:
            yield live, dep
    finally:
        dep.ws.close()


def test_review_flow_in_a_browser(
    browser: Browser, site: tuple[Live, Deployment], data_dir: Path
) -> None:
    live, dep = site
    images = data_dir / "london" / "images"
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page

    # administrator: a gallery and who may do what with it
    sign_in(page, live, dep, "admin")
    page.goto(f"{live.url}/ui/#/galleries")
    page.fill("#gallery-name", "watchlist")
    page.select_option("#gallery-basis", "warrant")
    page.fill("#gallery-retention", "365")
    page.click("#gallery-submit")
    expect(page.locator("h1")).to_have_text("Gallery watchlist")
    for user, level in [
        ("enroller", "enrol"),
        ("searcher", "search"),
        ("reviewer", "view_images"),
        ("reviewer2", "view_images"),
    ]:
        page.fill("#grant-user", user)
        page.select_option("#grant-level", level)
        page.click("#grant-submit")
        expect(page.locator("#grants")).to_contain_text(user)

    # enroller: four London subjects, ids taken from the file names
    sign_in(page, live, dep, "enroller")
    page.goto(f"{live.url}/ui/#/gallery/watchlist")
    page.check("#enrol-from-name")
    page.set_input_files("#enrol-files", [str(images / f"{s}.jpg") for s in ENROL])
    page.click("#enrol-submit")
    expect(page.locator("#enrol-summary")).to_have_text("4 enrolled, 0 duplicate, 0 rejected")

    # searcher: the smiling image of subject 001, with purpose and case
    sign_in(page, live, dep, "searcher")
    page.goto(f"{live.url}/ui/#/search")
    page.set_input_files("#search-image", str(images / "001_smiling.jpg"))
    page.fill("#search-purpose", "locate a missing person")
    page.fill("#search-case", "CASE-2024-17")
    page.click("#search-submit")
    expect(page).to_have_url(re.compile(r"#/searches/[0-9a-f]{32}$"))
    search_url = page.url
    lead = page.locator("#lead-1")
    expect(lead).to_contain_text("subject 001")
    expect(lead.locator(".fmr")).to_contain_text("1 in")
    # the score is named: a small gallery is scored by cosine, with the threshold beside it
    expect(lead.locator(".metric")).to_contain_text("Cosine similarity")
    expect(lead.locator(".metric")).to_contain_text("threshold")
    expect(lead.locator(".status")).to_have_attribute("data-status", "pending")
    expect(lead).to_contain_text("someone else reviews it")
    # a search grant shows no faces
    expect(lead.locator(".noimage")).to_contain_text("view_images")

    # first reviewer: probe beside the enrolled image, confirms
    sign_in(page, live, dep, "reviewer")
    page.goto(f"{live.url}/ui/#/queue")
    page.locator("#queue a").first.click()
    expect(page.locator("#probe img")).to_be_visible()
    expect(page.locator("#lead-1 figure.enrolled img")).to_be_visible()
    expect(page.locator("#probe-quality")).to_contain_text("quality")
    expect(page.locator("#two-person")).to_contain_text("two different reviewers")
    # blind review: the two faces first, no score, then a first look reveals it
    expect(page.locator("#lead-1")).to_have_attribute("data-blind", "true")
    expect(page.locator("#lead-1 .fmr")).to_have_count(0)
    page.check("#look-1-same")
    page.click("#first-look-1")
    expect(page.locator("#lead-1 .fmr")).to_contain_text("1 in")
    page.check("#verdict-1-confirmed")
    page.fill("#note-1", "same face shape, eyes and nose")
    page.click("#decide-1")
    status = page.locator("#lead-1 .status")
    expect(status).to_have_attribute("data-status", "awaiting_second_confirmation")
    expect(status).to_contain_text("1 of 2")

    # second reviewer: confirms, the lead is confirmed
    sign_in(page, live, dep, "reviewer2")
    page.goto(search_url)
    expect(page.locator("#lead-1 figure.enrolled img")).to_be_visible()
    page.check("#look-1-same")
    page.click("#first-look-1")
    page.check("#verdict-1-confirmed")
    page.fill("#note-1", "agree: same person")
    page.click("#decide-1")
    expect(page.locator("#lead-1 .status")).to_have_attribute("data-status", "confirmed")
    expect(page.locator("#lead-1 table.decisions")).to_contain_text("reviewer2")
    page.screenshot(path=str(ARTIFACTS / "review-confirmed.png"), full_page=True)

    # auditor: the review entries are in the log, and the chain verifies
    sign_in(page, live, dep, "auditor")
    page.goto(f"{live.url}/ui/#/audit")
    reviews = page.locator("#audit-entries tr[data-op=review]")
    expect(reviews).to_have_count(2)
    expect(reviews.first).to_contain_text("confirmed")
    expect(page.locator("#audit-entries tr[data-op=search]")).to_contain_text("CASE-2024-17")
    page.click("#audit-verify")
    expect(page.locator("#audit-verify-result")).to_contain_text("Chain OK")
    page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)
    context.close()

    watched.assert_clean()
    (state,) = dep.ws.reviews.searches()[0].leads[:1]
    assert str(state.status) == "confirmed" and state.confirmed_by == ("reviewer", "reviewer2")


def test_admin_pages_users_and_reports_in_a_browser(
    browser: Browser, site: tuple[Live, Deployment]
) -> None:
    live, dep = site
    reports = dep.settings.data_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "london-pairs.html").write_text(
        "<html><body><h1>FNMR at FMR 1e-3</h1>"
        "<script>document.body.append('SCRIPT-RAN')</script></body></html>"
    )
    context = browser.new_context()
    context.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    page = context.new_page()
    sign_in(page, live, dep, "admin")
    page.goto(f"{live.url}/ui/#/users")
    expect(page.locator("#users")).to_contain_text("reviewer2")
    page.fill("#user-create input[name=id]", "carol")
    page.check("#user-create input[value=auditor]")
    page.click("#user-create button[type=submit]")
    token = page.locator("#user-key .token")
    expect(token).to_contain_text("flk_")
    assert dep.ws.access.authenticate(token.inner_text()).id == "carol"

    page.goto(f"{live.url}/ui/#/reports")
    page.click("#reports a")
    frame = page.frame_locator("iframe.report")
    expect(frame.locator("h1")).to_have_text("FNMR at FMR 1e-3")
    # the report runs in a sandbox: its script never ran
    assert (
        page.frame_locator("iframe.report").locator("body").evaluate("() => document.title")
        != "ran"
    )

    # a gallery whose period is given in hours
    page.goto(f"{live.url}/ui/#/galleries")
    page.fill("#gallery-name", "flight")
    page.select_option("#gallery-basis", "statute")
    page.fill("#gallery-retention", "12")
    page.select_option("#gallery-retention-unit", "hours")
    page.click("#gallery-submit")
    expect(page.locator("h1")).to_have_text("Gallery flight")
    expect(page.locator("#view")).to_contain_text("retention 12 hours")
    assert dep.ws.store.get_gallery_by_name("flight").retention_hours == 12
    page.goto(f"{live.url}/ui/#/galleries")
    expect(page.locator("#galleries tr[data-gallery=flight]")).to_contain_text("12 h")
    context.close()
