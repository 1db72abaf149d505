"""The examiner's side of a search, through the use cases on real faces: the searcher picks
which faces of a two-person photo to search and each lead says which face it belongs to; a
reviewer judges the two faces blind before any score is shown; the queue's filters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from faceledger import Settings
from faceledger.access import GrantLevel, Role, User
from faceledger.errors import Conflict, InvalidArgument
from faceledger.gallery import Workspace, open_workspace
from faceledger.usecases import (
    CreateGallery,
    DecideLead,
    EnrolImage,
    FirstLookAt,
    QueueFilter,
    SearchRequest,
    create_gallery,
    decide_lead,
    enrol_image,
    read_search,
    record_first_look,
    review_queue,
    search,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Desk:
    ws: Workspace
    clock: Clock
    users: dict[str, User]
    pair: Path
    """A photo of two people side by side: 030 on the left, 008 on the right."""


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Desk]:
    folder = tmp_path_factory.mktemp("review-faces")
    img = data_dir / "london/images"
    left, right = (Image.open(img / f"{sid}_smiling.jpg").convert("RGB") for sid in ("030", "008"))
    pair = Image.new("RGB", (left.width + right.width, max(left.height, right.height)))
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    pair.save(folder / "pair.jpg", quality=92)
    clock = Clock()
    ws = open_workspace(Settings(data_dir=folder / "ws"), clock=clock)
    admin = ws.access.create_user("admin", [Role.ADMIN], by=None)
    users = {"admin": admin}
    for gallery in ("g", "h"):
        create_gallery(ws, admin, CreateGallery(gallery, "statute"))
    for name, role, level in (
        ("enroller", Role.ENROLLER, GrantLevel.ENROL),
        ("searcher", Role.SEARCHER, GrantLevel.SEARCH),
        ("rev1", Role.REVIEWER, GrantLevel.VIEW_IMAGES),
        ("rev2", Role.REVIEWER, GrantLevel.VIEW_IMAGES),
    ):
        ws.access.create_user(name, [role], by=admin)
        for gallery in ("g", "h"):
            users[name] = ws.access.grant(name, gallery, level, by=admin)
    for gallery, sid in (("g", "008"), ("h", "030")):
        enrol_image(ws, users["enroller"], EnrolImage(gallery, sid, img / f"{sid}_neutral.jpg"))
    try:
        yield Desk(ws, clock, users, folder / "pair.jpg")
    finally:
        ws.close()


def _detected(desk: Desk) -> dict[int, float]:
    """Each face of the pair photo by its index, with the x of its box's centre."""
    faces = desk.ws.engine.detect(desk.pair)
    return {f.face_index: (f.detection.box.left + f.detection.box.right) / 2 for f in faces}


def test_the_searcher_picks_faces_and_each_lead_names_its_face(desk: Desk) -> None:
    centres = _detected(desk)
    assert len(centres) == 2
    right = max(centres, key=lambda i: centres[i])  # 008's face
    left = min(centres, key=lambda i: centres[i])
    req = SearchRequest(desk.pair, ("g", "h"), "robbery", "R-1", faces=(right,))
    only = search(desk.ws, desk.users["searcher"], req)
    assert [f.face.face_index for f in only.faces] == [right]
    assert [c.external_id for c in only.faces[0].candidates] == ["008"]
    both = search(
        desk.ws,
        desk.users["searcher"],
        SearchRequest(desk.pair, ("g", "h"), "robbery", "R-2", faces=(left, right)),
    )
    rec = read_search(desk.ws, desk.users["searcher"], both.search_id).record
    by_face = {s.lead.subject_id: s.face_index for s in rec.leads}
    assert by_face == {"030": left, "008": right}
    for bad in ((), (7,)):
        with pytest.raises(InvalidArgument):
            search(
                desk.ws,
                desk.users["searcher"],
                SearchRequest(desk.pair, ("g",), "robbery", "R-3", faces=bad),
            )


def test_a_reviewer_looks_blind_before_scores_and_the_queue_filters(desk: Desk) -> None:
    ws, users = desk.ws, desk.users
    desk.clock.now += timedelta(days=1)
    found = search(
        ws,
        users["searcher"],
        SearchRequest(desk.pair, ("g", "h"), "missing person", "M-9", all_faces=True),
    )
    seen = read_search(ws, users["rev1"], found.search_id)
    assert seen.blind == {s.rank for s in seen.record.leads} and seen.blind
    assert read_search(ws, users["searcher"], found.search_id).blind == frozenset()
    with pytest.raises(Conflict, match="first look"):
        decide_lead(ws, users["rev1"], DecideLead(found.search_id, 1, "confirmed", "same"))
    record_first_look(ws, users["rev1"], FirstLookAt(found.search_id, 1, "same"))
    after = read_search(ws, users["rev1"], found.search_id)
    assert 1 not in after.blind and after.blind == seen.blind - {1}
    assert read_search(ws, users["rev2"], found.search_id).blind == seen.blind  # their own
    decide_lead(ws, users["rev1"], DecideLead(found.search_id, 1, "confirmed", "ears agree"))

    queue = review_queue(ws, users["rev2"], limit=10).items
    assert found.search_id in [v.record.search_id for v in queue]
    newer = review_queue(
        ws, users["rev2"], limit=10, only=QueueFilter(since=desk.clock.now - timedelta(hours=1))
    ).items
    assert [v.record.search_id for v in newer] == [found.search_id]
    older = review_queue(
        ws, users["rev2"], limit=10, only=QueueFilter(until=desk.clock.now - timedelta(hours=1))
    ).items
    assert found.search_id not in [v.record.search_id for v in older] and older
    lead_h = next(s.rank for s in seen.record.leads if s.lead.gallery == "h")
    in_h = review_queue(ws, users["rev2"], limit=10, only=QueueFilter(gallery="h")).items
    assert found.search_id in [v.record.search_id for v in in_h]
    record_first_look(ws, users["rev2"], FirstLookAt(found.search_id, lead_h, "unsure"))
    decide_lead(ws, users["rev2"], DecideLead(found.search_id, lead_h, "inconclusive", "blur"))
    still = review_queue(ws, users["rev2"], limit=10, only=QueueFilter(gallery="h")).items
    assert found.search_id not in [v.record.search_id for v in still]
