"""The review of a kept cluster set in a real browser (Chromium driven by Playwright): a set of
London faces, one image showing two people, listed on the Clusters page and opened there as a
contact sheet of face crops; a merge across the two faces of one image refused with its reason
shown; a face split off and merged back, a cluster named (from the keyboard) and another
dismissed, the dismissal undone, the server's set checked after each step; each crop fetched
(and audited) once. No serious or critical axe-core violation on the clusters and galleries
pages. Screenshots land in ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from faceledger.api.concurrency import SerialEngine
from faceledger.usecases.cluster_review import OP_CLUSTER_FACE_VIEW
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
API = "/api/v1"
SINGLES = ("001_neutral", "005_neutral")
PAIR = "pair.jpg"  # 001 and 005 side by side: two faces of one image, never one person


@pytest.fixture
def site(tmp_path: Path, serial_engine: SerialEngine) -> Iterator[tuple[Live, Deployment]]:
    dep = deploy(tmp_path / "ws", serial_engine)
    try:
        with serve(dep) as live:
            yield live, dep
    finally:
        dep.ws.close()


def pair_photo(images: Path, out: Path) -> Path:
    """Two London portraits pasted side by side: 001 on the left, 005 on the right."""
    left = Image.open(images / "001_smiling.jpg").convert("RGB")
    right = Image.open(images / "005_smiling.jpg").convert("RGB")
    both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "gray")
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    both.save(out, quality=92)
    return out


def kept_set(live: Live, dep: Deployment, images: Path, pair: Path) -> dict[str, Any]:
    """The searcher's kept set of 001, 005 and the pair photo (over HTTP)."""
    files = [
        ("images", (f"{s}.jpg", (images / f"{s}.jpg").read_bytes(), "image/jpeg")) for s in SINGLES
    ]
    files.append(("images", (PAIR, pair.read_bytes(), "image/jpeg")))
    data = {"purpose": "unknown faces", "case_ref": "C-7", "keep": "true"}
    with live.client() as c:
        r = c.post(f"{API}/clusterings", files=files, data=data, headers=dep.headers("searcher"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def server_set(live: Live, dep: Deployment, set_id: str) -> dict[str, Any]:
    with live.client() as c:
        r = c.get(f"{API}/cluster-sets/{set_id}", headers=dep.headers("searcher"))
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def clusters_of(found: dict[str, Any]) -> dict[int, list[int]]:
    return {c["cluster"]: sorted(c["faces"]) for c in found["clusters"]}


def cluster_of(found: dict[str, Any], face: int) -> int:
    (k,) = [int(c["cluster"]) for c in found["clusters"] if face in c["faces"]]
    return k


def merge(page: Page, other: int, into: int) -> None:
    page.select_option("#merge-other", str(other))
    page.select_option("#merge-into", str(into))
    page.click("#merge-submit")


def test_cluster_set_reviewed_in_a_browser(
    browser: Browser, site: tuple[Live, Deployment], data_dir: Path, tmp_path: Path
) -> None:
    live, dep = site
    ARTIFACTS.mkdir(exist_ok=True)
    made = kept_set(
        live,
        dep,
        data_dir / "london" / "images",
        pair_photo(data_dir / "london" / "images", tmp_path / PAIR),
    )
    set_id = made["cluster_set_id"]
    single = next(i for i, f in enumerate(made["faces"]) if f["image"] == "001_neutral.jpg")
    start = server_set(live, dep, set_id)
    assert len(start["clusters"]) == 2 and len(start["faces"]) == 4
    a = cluster_of(start, single)  # 001: its portrait and the pair's left face
    (b,) = set(clusters_of(start)) - {a}

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page
    sign_in(page, live, dep, "reviewer")  # a reviewer of the searcher's organisation
    page.click("#nav a[href='#/clusters']")
    expect(page.locator("h1")).to_have_text("Cluster sets")
    listed = page.locator(f"#cluster-sets tr[data-set='{set_id}']")  # the sets one may read
    expect(listed).to_contain_text("unknown faces")
    expect(listed.locator("td.metric")).to_have_text(["4", "2"])
    assert axe_violations(page) == []
    page.get_by_label("Cluster set id").fill(set_id)
    page.click("#cluster-open-submit")
    expect(page.locator("h1")).to_have_text(f"Cluster set {set_id}")
    expect(page.locator("section.cluster[data-cluster]")).to_have_count(2)
    expect(page.locator(f"#cluster-{a} li.face")).to_have_count(2)
    expect(page.locator("li.face img")).to_have_count(4)
    expect(page.locator(f"#cluster-{a} h2")).to_contain_text("not reviewed")
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "clusters.png"), full_page=True)

    # the two faces of the pair photo are two people: the merge is refused, its reason shown
    merge(page, b, a)
    refused = page.locator("#merge-error")
    expect(refused).to_be_visible()
    expect(refused).to_contain_text("two faces of one image")
    expect(refused).to_contain_text("[cannot_link]")
    assert clusters_of(server_set(live, dep, set_id)) == clusters_of(start)
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "clusters-merge-refused.png"), full_page=True)

    # 001's portrait split off its cluster, then merged back
    page.get_by_label(f"Face {single}", exact=True).check()
    page.click(f"#split-{a}")
    expect(page.locator("#cluster-status")).to_contain_text(f"split off cluster {a}")
    after_split = server_set(live, dep, set_id)
    assert len(after_split["clusters"]) == 3
    c = cluster_of(after_split, single)
    assert c not in (a, b) and clusters_of(after_split)[c] == [single]
    expect(page.locator("section.cluster[data-cluster]")).to_have_count(3)
    merge(page, c, a)
    expect(page.locator("#cluster-status")).to_contain_text(f"merged into cluster {a}")
    after_merge = server_set(live, dep, set_id)
    assert clusters_of(after_merge) == clusters_of(start)
    assert [x["action"] for x in after_merge["actions"]] == ["split", "merge"]

    # named from the keyboard: type the label, press Enter
    name = page.get_by_label(f"Name for cluster {a}")
    name.fill("person A")
    name.press("Enter")
    expect(page.locator(f"#cluster-{a} h2")).to_contain_text("“person A”")
    expect(page.locator(f"#cluster-{a} h2")).to_contain_text("named")
    labels = {x["cluster"]: x["label"] for x in server_set(live, dep, set_id)["clusters"]}
    assert labels[a] == "person A"

    # dismissed, then the dismissal undone
    page.get_by_label(f"Why cluster {b} is not a person").fill("a poster on the wall")
    page.click(f"#dismiss-{b}")
    expect(page.locator(f"#cluster-{b}")).to_have_attribute("data-dismissed", "true")
    expect(page.locator(f"#cluster-{b} h2")).to_contain_text("dismissed: a poster on the wall")
    gone = {x["cluster"]: x for x in server_set(live, dep, set_id)["clusters"]}
    assert gone[b]["dismissed"] and gone[b]["dismiss_reason"] == "a poster on the wall"
    undo = page.locator("#cluster-undo")
    expect(undo).to_contain_text("dismiss by reviewer")
    undo.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#cluster-status")).to_contain_text("Undone: dismiss")
    expect(page.locator(f"#cluster-{b}")).to_have_attribute("data-dismissed", "false")
    back = server_set(live, dep, set_id)
    assert not {x["cluster"]: x for x in back["clusters"]}[b]["dismissed"]
    done = [(x["action"], x["undone"]) for x in back["actions"]]
    assert done[-2:] == [("dismiss", True), ("undo", False)]
    expect(undo).to_contain_text("name by reviewer")  # the next undo: the naming
    assert axe_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / "clusters-reviewed.png"), full_page=True)
    page.click("#cluster-sets-link")
    listed.get_by_role("link").click()  # back to the list, and the set again from it
    expect(page.locator("h1")).to_have_text(f"Cluster set {set_id}")
    context.close()

    watched.assert_clean()
    # each crop fetched once for the page (every view audited), not once per redraw
    views = list(dep.ws.audit.entries(operation=OP_CLUSTER_FACE_VIEW))
    assert sorted(str(e.record.details["face"]) for e in views) == ["0", "1", "2", "3"]
    assert {e.record.actor for e in views} == {"reviewer"}


def test_galleries_page_has_no_serious_axe_violation(
    browser: Browser, site: tuple[Live, Deployment]
) -> None:
    live, dep = site
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    watched = watched_page(context, live)
    page = watched.page
    sign_in(page, live, dep, "admin")  # the table and the form creating a gallery
    page.goto(f"{live.url}/ui/#/galleries")
    expect(page.locator("h1")).to_have_text("Galleries")
    expect(page.locator("#galleries tr[data-gallery]")).to_have_count(1)
    expect(page.locator("#gallery-create")).to_be_visible()
    assert axe_violations(page) == []
    context.close()
    watched.assert_clean()


def test_the_list_of_sets_shows_each_reader_theirs(
    site: tuple[Live, Deployment], data_dir: Path, tmp_path: Path
) -> None:
    live, dep = site
    images = data_dir / "london" / "images"
    made = kept_set(live, dep, images, pair_photo(images, tmp_path / PAIR))
    set_id = made["cluster_set_id"]
    with live.client() as c:

        def listed(who: str) -> list[str]:
            r = c.get(f"{API}/cluster-sets", headers=dep.headers(who))
            assert r.status_code == 200, r.text
            return [s["set_id"] for s in r.json()]

        assert listed("searcher") == [set_id]  # its creator
        assert listed("reviewer") == [set_id]  # a reviewer of its organisation
        assert listed("enroller") == []  # may cluster, but neither kept it nor reviews
        (row,) = c.get(f"{API}/cluster-sets", headers=dep.headers("searcher")).json()
        assert (row["faces"], row["clusters"], row["case_ref"]) == (4, 2, "C-7")
        crop = c.get(f"{API}/cluster-sets/{set_id}/faces/0/crop", headers=dep.headers("reviewer"))
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert crop.content[:2] == b"\xff\xd8"
        none = c.get(f"{API}/cluster-sets/{set_id}/faces/99/crop", headers=dep.headers("reviewer"))
        assert none.status_code == 404
