"""The lead review page built for the careful examiner, in a real browser (Chromium driven by
Playwright): a two-person photo with every face boxed and numbered, the searcher picking the
faces to search; reviewers who see each candidate's two faces side by side (aligned, zoomed
and panned together) and record a blind first look before any score; verdicts with nothing
preselected under the two-person rule; keyboard navigation between leads; and no serious or
critical axe-core violation on the review, queue, search and audit pages. Screenshots land in
``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from faceledger import usecases as uc
from faceledger.api.concurrency import SerialEngine
from tests.api.live import (
    GALLERY,
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
ENROL = ["001", "005", "002"]
LEFT, RIGHT = "001", "005"  # the two people of the composed probe, left and right

# words broken over two lines: a text node of one word drawn as more than one line box
BROKEN_WORDS = """(sel) => [...document.querySelectorAll(sel)].flatMap((cell) => {
  const out = [];
  for (const node of cell.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE) continue;
    for (const m of node.textContent.matchAll(/\\S+/g)) {
      const r = document.createRange();
      r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
      const lines = new Set([...r.getClientRects()].map((b) => Math.round(b.top)));
      if (lines.size > 1) out.push(m[0]);
    }
  }
  return out;
})"""


@pytest.fixture
def site(
    tmp_path: Path, serial_engine: SerialEngine, data_dir: Path
) -> Iterator[tuple[Live, Deployment]]:
    """The deployment's gallery with three London subjects (001, 005, 002) enrolled."""
    images = data_dir / "london" / "images"
    dep = deploy(tmp_path / "ws", serial_engine, keep_enrolled_images=True, keep_probe_images=True)
    enroller = dep.user("enroller")
    for person in ENROL:
        uc.enrol_image(
            dep.ws, enroller, uc.EnrolImage(GALLERY, person, images / f"{person}_neutral.jpg")
        )
    try:
        with serve(dep) as live:
            yield live, dep
    finally:
        dep.ws.close()


def two_person_photo(images: Path, out: Path) -> Path:
    """Two London portraits pasted side by side: 001 on the left, 005 on the right."""
    left = Image.open(images / f"{LEFT}_smiling.jpg").convert("RGB")
    right = Image.open(images / f"{RIGHT}_smiling.jpg").convert("RGB")
    height = max(left.height, right.height)
    both = Image.new("RGB", (left.width + right.width, height), (128, 128, 128))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    both.save(out, quality=92)
    return out


def lead_of(page: Page, subject: str) -> Locator:
    return page.locator("#leads > .lead").filter(has_text=f"subject {subject} ")


def focused_id(page: Page) -> str:
    got: str = page.evaluate("() => document.activeElement && document.activeElement.id")
    return got


def test_blind_two_person_review_of_a_two_face_probe(
    browser: Browser, site: tuple[Live, Deployment], data_dir: Path, tmp_path: Path
) -> None:
    live, dep = site
    ARTIFACTS.mkdir(exist_ok=True)
    probe = two_person_photo(data_dir / "london" / "images", tmp_path / "two-people.jpg")
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page

    # the searcher: both faces boxed and numbered, none ticked; a search needs a choice
    sign_in(page, live, dep, "searcher")
    page.goto(f"{live.url}/ui/#/search")
    page.set_input_files("#search-image", str(probe))
    choice = page.locator("#search-face-choice input[name=faces]")
    expect(choice).to_have_count(2)
    expect(page.locator("#search-preview svg g.face-box")).to_have_count(2)
    for i in range(2):
        expect(choice.nth(i)).not_to_be_checked()
    expect(page.locator("#search-face-hint")).to_contain_text("none is ticked")
    page.fill("#search-purpose", "locate two missing persons")
    page.fill("#search-case", "CASE-2025-41")
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "search-two-faces.png"), full_page=True)
    page.click("#search-submit")
    expect(page.locator("#error")).to_contain_text("tick the face")
    expect(page).to_have_url(re.compile(r"#/search$"))
    page.check("#search-face-0")
    page.check("#search-face-1")
    page.click("#search-submit")
    expect(page).to_have_url(re.compile(r"#/searches/[0-9a-f]{32}$"))
    search_url = page.url
    search_id = search_url.rsplit("/", 1)[1]

    # which face of the probe is whose: the left one is 001
    record = dep.ws.reviews.search(search_id)
    faces = live.service.images.probe_faces(search_id) or ()
    assert len(faces) == 2
    left_face = min(faces, key=lambda f: f["box"]["left"])["face_index"]
    right_face = max(faces, key=lambda f: f["box"]["left"])["face_index"]
    ranks = {st.lead.subject_id: st.rank for st in record.leads}
    assert {LEFT, RIGHT} <= set(ranks), ranks

    # the searcher sees the numbered boxes and which face each lead is for, and no review form
    expect(page.locator("#probe svg g.face-box")).to_have_count(2)
    expect(page.locator("#probe-quality li")).to_have_count(2)
    left_lead = lead_of(page, LEFT)
    expect(left_lead.locator(".face-of")).to_contain_text(f"probe face {left_face + 1}")
    expect(lead_of(page, RIGHT).locator(".face-of")).to_contain_text(f"probe face {right_face + 1}")
    expect(left_lead).to_contain_text("someone else reviews it")
    expect(page.locator("form.decide, form.first-look")).to_have_count(0)
    assert axe_violations(page) == []

    # the first reviewer: the queue, its filters and paging
    sign_in(page, live, dep, "reviewer")
    page.goto(f"{live.url}/ui/#/queue")
    expect(page.locator(f"#queue tr[data-search='{search_id}']")).to_contain_text(
        "awaiting your first look"
    )
    page.select_option("#queue-gallery", GALLERY)
    page.fill("#queue-since", (date.today() + timedelta(days=2)).isoformat())
    page.click("#queue-filter")
    expect(page.locator("#queue")).to_have_text("Nothing here.")
    page.fill("#queue-since", "")
    page.fill("#queue-until", (date.today() + timedelta(days=2)).isoformat())
    page.click("#queue-filter")
    expect(page.locator(f"#queue tr[data-search='{search_id}']")).to_be_visible()
    expect(page.locator("#queue-gallery")).to_have_value(GALLERY)
    assert axe_violations(page) == []
    page.locator(f"#queue tr[data-search='{search_id}'] a").click()

    # blind: two faces side by side, lettered candidates, no score, rank, FMR or status
    cards = page.locator("#leads > .lead")
    expect(cards).to_have_count(len(record.leads))
    expect(cards.first.locator("h2")).to_have_text("Candidate A")
    expect(cards.nth(1).locator("h2")).to_have_text("Candidate B")
    expect(page.locator("#blind-notice")).to_be_visible()
    for i in range(cards.count()):
        card = cards.nth(i)
        expect(card).to_have_attribute("data-blind", "true")
        expect(card.locator(".pane img")).to_have_count(2)  # probe face and candidate face
    expect(page.locator("#leads .fmr, #leads .status, #leads table.decisions")).to_have_count(0)
    expect(page.locator("#leads")).not_to_contain_text("subject")
    expect(page.locator("#leads")).not_to_contain_text("lead 1")
    expect(page.locator("#leads input[type=radio]:checked")).to_have_count(0)
    r1 = ranks[LEFT]
    card1 = page.locator(f"#lead-{r1}")
    expect(card1.locator(".face-of")).to_contain_text(f"probe face {left_face + 1}")
    # the aligned crops come with landmarks; zoom applies to both faces together
    expect(page.locator(f"#marks-{r1}")).to_be_enabled()
    page.check(f"#marks-{r1}")
    expect(page.locator(f"#compare-{r1}")).to_have_class(re.compile("show-marks"))
    page.locator(f"#zoom-{r1}").fill("3")
    layers = card1.locator(".zoom-layer")
    for i in range(2):
        expect(layers.nth(i)).to_have_attribute("style", re.compile(r"scale\(3\)"))
    card1.locator(".viewport").first.focus()
    page.keyboard.press("ArrowLeft")
    for i in range(2):
        expect(layers.nth(i)).to_have_attribute("style", re.compile(r"translate\(20px, 0px\)"))
    page.click(f"#whole-{r1}")  # the whole images, the probe's face boxed
    expect(card1.locator(".probe-face svg g.face-box")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "review-blind.png"), full_page=True)
    assert axe_violations(page) == []

    # keyboard: j / n next lead, k / p previous, from anywhere but a text field
    page.locator("h1").click()
    page.keyboard.press("j")
    first_id = cards.first.get_attribute("id")
    second_id = cards.nth(1).get_attribute("id")
    assert focused_id(page) == first_id
    page.keyboard.press("n")
    assert focused_id(page) == second_id
    page.keyboard.press("k")
    assert focused_id(page) == first_id
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"

    # the first look, then the score and the verdict form, nothing preselected
    page.check(f"#look-{r1}-same")
    page.click(f"#first-look-{r1}")
    expect(card1).to_have_attribute("data-blind", "false")
    expect(card1.locator(".fmr")).to_contain_text("1 in")
    expect(card1).to_contain_text(f"lead {r1}: subject {LEFT}")
    expect(card1.locator("table.first-looks")).to_contain_text("same")
    for verdict in ("confirmed", "rejected", "inconclusive"):
        expect(page.locator(f"#verdict-{r1}-{verdict}")).not_to_be_checked()
    expect(page.locator(f"#note-{r1}")).to_have_attribute("required", "")
    page.check(f"#verdict-{r1}-confirmed")
    page.fill(f"#note-{r1}", "same ear shape, nose bridge and hairline")
    page.click(f"#decide-{r1}")
    expect(card1.locator(".status")).to_have_attribute(
        "data-status", "awaiting_second_confirmation"
    )
    expect(page.locator(f"#needs-{r1}")).to_have_text(
        "needs 1 more confirmation from a reviewer other than reviewer"
    )
    assert focused_id(page) == f"lead-{r1}"  # back on the lead just decided
    page.screenshot(path=str(ARTIFACTS / "review-first-verdict.png"), full_page=True)
    assert axe_violations(page) == []

    # the second reviewer: blind again for them, then confirms; the lead is confirmed
    sign_in(page, live, dep, "reviewer2")
    page.goto(f"{live.url}/ui/#/queue")
    expect(page.locator(f"#queue tr[data-search='{search_id}']")).to_be_visible()
    page.goto(search_url)
    expect(card1).to_have_attribute("data-blind", "true")
    expect(card1.locator(".status, table.decisions")).to_have_count(0)
    page.check(f"#look-{r1}-same")
    page.click(f"#first-look-{r1}")
    expect(card1.locator("table.decisions")).to_contain_text("reviewer")
    page.check(f"#verdict-{r1}-confirmed")
    page.fill(f"#note-{r1}", "agree: same person")
    page.click(f"#decide-{r1}")
    expect(card1.locator(".status")).to_have_attribute("data-status", "confirmed")
    expect(page.locator(f"#needs-{r1}")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "review-confirmed-two-faces.png"), full_page=True)

    # the auditor: the audit table at 1280 px breaks no word; no serious axe violation
    sign_in(page, live, dep, "auditor")
    page.goto(f"{live.url}/ui/#/audit")
    expect(page.locator("#audit-entries tr[data-op=review]")).to_have_count(2)
    broken = page.evaluate(
        BROKEN_WORDS,
        "#audit-entries th, #audit-entries td:not(.wrap)",
    )
    assert broken == [], broken
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "audit-1280.png"), full_page=True)
    context.close()

    watched.assert_clean()
    state = next(st for st in dep.ws.reviews.search(search_id).leads if st.rank == r1)
    assert str(state.status) == "confirmed"
    assert set(state.confirmed_by) == {"reviewer", "reviewer2"}


def test_one_face_picked_of_two_and_the_searches_pages(
    browser: Browser, site: tuple[Live, Deployment], data_dir: Path, tmp_path: Path
) -> None:
    """Only the ticked face is searched; the searches list pages with next_cursor."""
    live, dep = site
    probe = two_person_photo(data_dir / "london" / "images", tmp_path / "two-people.jpg")
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page
    sign_in(page, live, dep, "searcher")
    for n in range(2):
        page.goto(f"{live.url}/ui/#/search")
        page.set_input_files("#search-image", str(probe))
        expect(page.locator("#search-face-choice input[name=faces]")).to_have_count(2)
        page.check("#search-face-0")
        page.fill("#search-purpose", "locate a missing person")
        page.fill("#search-case", f"CASE-2025-5{n}")
        page.click("#search-submit")
        expect(page).to_have_url(re.compile(r"#/searches/[0-9a-f]{32}$"))
        leads = page.locator("#leads > .lead, #no-candidate")
        expect(leads.first).to_be_visible()
        search_id = page.url.rsplit("/", 1)[1]
        record = dep.ws.reviews.search(search_id)
        assert {st.face_index for st in record.leads} <= {0, None}
        for st in record.leads:
            expect(page.locator(f"#lead-{st.rank} .face-of")).to_contain_text("probe face 1")
    # a page of 20: both searches fit; the pager shows no next page
    page.goto(f"{live.url}/ui/#/searches")
    expect(page.locator("#searches tr[data-search]")).to_have_count(2)
    expect(page.locator("#searches-next")).to_have_count(0)
    context.close()
    watched.assert_clean()
