"""The web UI's field check page on a phone-sized screen (Debian's Chromium driven by
Playwright, 390×844, touch): a searcher takes the document's photo and the face's photo
(file inputs with ``capture``), states purpose and case, and reads the decision, every reason,
the MRZ's check digits (ok or fail), the fields no check digit protects, the expiry and the
1:1 result with its FMR; then searches the same face 1:N. No horizontal scrolling. A
screenshot lands in ``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from faceledger import usecases as uc
from faceledger.api.concurrency import SerialEngine
from tests.api.live import GALLERY, Deployment, Live, axe_violations, deploy, serve, watched_page
from tests.api.synthetic_documents import passport

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, serial_engine: SerialEngine, data_dir: Path
) -> Iterator[tuple[Live, Deployment, Path]]:
    """A deployment whose gallery holds subjects 001 and 002, and the two passports of 001
    (one with its document number's check digit printed wrong) as files to upload."""
    root = tmp_path_factory.mktemp("field-check")
    images = data_dir / "london" / "images"
    dep = deploy(root / "ws", serial_engine)
    enroller = dep.user("enroller")
    for person in ("001", "002"):
        req = uc.EnrolImage(GALLERY, person, images / f"{person}_neutral.jpg")
        uc.enrol_image(dep.ws, enroller, req)
    (root / "passport.png").write_bytes(passport(images, "001").png)
    broken = passport(images, "001", break_check="document_number")
    (root / "broken.png").write_bytes(broken.png)
    try:
        with serve(dep) as live:
            yield live, dep, root
    finally:
        dep.ws.close()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def submit_check(page: Page, document: Path, face: Path) -> None:
    page.set_input_files("#check-document", str(document))
    page.set_input_files("#check-live", str(face))
    page.click("#check-submit")


def test_field_check_on_a_phone(
    browser: Browser, site: tuple[Live, Deployment, Path], data_dir: Path
) -> None:
    live, dep, files = site
    face = data_dir / "london" / "images" / "001_smiling.jpg"
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    watched = watched_page(context, live)
    page = watched.page

    page.goto(f"{live.url}/ui/#/")
    page.fill("#key", dep.tokens["searcher"])
    page.click("#signin-submit")
    expect(page.locator("#who")).to_contain_text("searcher")
    page.click("nav a[href='#/check']")
    expect(page.locator("h1")).to_have_text("Field check")
    # the phone's cameras: the back one for the document, the front one for the face
    expect(page.locator("#check-document")).to_have_attribute("capture", "environment")
    expect(page.locator("#check-live")).to_have_attribute("capture", "user")
    expect(page.locator("#check-live")).to_have_attribute("accept", "image/*")
    assert no_horizontal_scroll(page)
    assert axe_violations(page) == []

    # purpose and case are required: the browser does not send the form without them
    submit_check(page, files / "passport.png", face)
    expect(page.locator("#check-outcome")).to_have_count(0)
    page.fill("#check-purpose", "identity check at the roadside")
    page.fill("#check-case", "PATROL-2024-88")
    page.click("#check-submit")

    expect(page.locator("#check-decision")).to_have_text("PASS")
    assert axe_violations(page) == []  # the form and a pass
    expect(page.locator("#check-decision")).to_have_attribute("data-decision", "pass")
    expect(page.locator("#check-reasons li")).to_have_count(1)
    expect(page.locator("#check-reasons li[data-reason=match]")).to_contain_text("matches")
    digits = page.locator("#check-digits tr[data-check]")
    expect(digits).to_have_count(5)
    expect(page.locator("#check-digits tr[data-ok=true]")).to_have_count(5)
    expect(page.locator("#check-digits tr[data-check=document_number]")).to_contain_text("ok")
    surname = page.locator("#check-fields tr[data-field=surname]")
    expect(surname).to_contain_text("ERIKSSON")
    expect(surname).to_contain_text("no check digit")
    expect(page.locator("#check-fields tr[data-field=document_number]")).to_contain_text(
        "check digit ok"
    )
    expect(page.locator("#check-unchecked")).to_contain_text("Surname, Given names")
    expect(page.locator("#check-expiry")).to_contain_text("Valid until 2034-04-15")
    expect(page.locator("#check-match")).to_contain_text("Match")
    expect(page.locator("#check-match")).to_contain_text("threshold")
    expect(page.locator("#check-fmr-value")).to_contain_text("1 in")
    expect(page.locator("#check-portrait")).to_contain_text("between the eyes")
    expect(page.locator("#check-search")).to_contain_text(GALLERY)
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / "field-check-phone.png"), full_page=True)

    # a check digit printed wrong: refer, and the failing digit is shown as such
    submit_check(page, files / "broken.png", face)
    expect(page.locator("#check-decision")).to_have_text("REFER to an officer")
    expect(page.locator("#check-reasons li[data-reason=mrz_invalid]")).to_be_visible()
    failing = page.locator("#check-digits tr[data-ok=false]")
    expect(failing).to_have_count(1)
    expect(failing).to_have_attribute("data-check", "document_number")
    expect(failing).to_contain_text("fail")
    assert no_horizontal_scroll(page)
    assert axe_violations(page) == []  # a referral

    # search this face (1:N): the same live photo, purpose and case, the search's own page
    page.click("#check-search-submit")
    expect(page).to_have_url(re.compile(r"#/searches/[0-9a-f]{32}$"))
    expect(page.locator("#lead-1")).to_contain_text("subject 001")
    expect(page.locator("#search-info")).to_contain_text("PATROL-2024-88")
    context.close()

    watched.assert_clean()
    checks = [e for e in dep.ws.audit.entries() if e.record.operation == "document_check"]
    assert [e.record.details["decision"] for e in checks] == ["pass", "refer"]
    (search,) = dep.ws.reviews.searches()
    assert (search.purpose, search.case_ref) == ("identity check at the roadside", "PATROL-2024-88")
