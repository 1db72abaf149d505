"""Accountability through the gallery layer: review with two people, retention, encryption."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faceledger import Settings
from faceledger.access import Role
from faceledger.access.policy import GrantLevel
from faceledger.errors import EncryptionKeyError, NotFound, PermissionDenied
from faceledger.gallery import local_operator, open_workspace
from faceledger.gallery.images import ImageStore
from faceledger.review import LeadStatus
from faceledger.store import generate_key
from faceledger.store.database import sqlite_path
from faceledger.usecases import (
    ApplyRetention,
    CreateGallery,
    DeleteGallery,
    EnrolImage,
    SearchRequest,
    SearchResult,
    apply_retention,
    create_gallery,
    delete_gallery,
    enrol_image,
    search,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_search_review_with_two_person_rule(tmp_path: Path, data_dir: Path) -> None:
    ws = open_workspace(Settings(data_dir=tmp_path))
    admin = ws.access.create_user("admin", [Role.ADMIN], by=None)
    ws.store.create_gallery(
        "g", model_id="dlib-resnet-v1", created_by="admin", legal_basis="statute"
    )
    enroller = ws.access.create_user("enroller", [Role.ENROLLER], by=admin)
    enroller = ws.access.grant("enroller", "g", GrantLevel.ENROL, by=admin)
    searcher = ws.access.create_user("searcher", [Role.SEARCHER], by=admin)
    searcher = ws.access.grant("searcher", "g", GrantLevel.SEARCH, by=admin)
    rev = []
    for name in ("rev1", "rev2"):
        ws.access.create_user(name, [Role.REVIEWER], by=admin)
        rev.append(ws.access.grant(name, "g", GrantLevel.VIEW_IMAGES, by=admin))
    img = data_dir / "london/images"
    for sid in ("005", "008", "030"):
        enrol_image(ws, enroller, EnrolImage("g", sid, img / f"{sid}_neutral.jpg"))
    with pytest.raises(PermissionDenied):
        enrol_image(ws, searcher, EnrolImage("g", "042", img / "042_neutral.jpg"))

    res = search(
        ws,
        searcher,
        SearchRequest(img / "008_smiling.jpg", ("g",), purpose="missing person", case_ref="MP-7"),
    )
    (lead,) = res.faces[0].candidates
    assert lead.external_id == "008"
    with pytest.raises(PermissionDenied):  # a searcher may not review their own search
        ws.reviews.decide(searcher, res.search_id, 1, "confirmed", "looks alike")
    for reviewer in rev:  # blind review: each looks at the two faces before any score
        ws.reviews.first_look(reviewer, res.search_id, 1, "same")
    s1 = ws.reviews.decide(rev[0], res.search_id, 1, "confirmed", "same ears, same scar")
    assert s1.status is LeadStatus.AWAITING_SECOND
    s1b = ws.reviews.decide(rev[0], res.search_id, 1, "confirmed", "again, same reviewer")
    assert s1b.status is LeadStatus.AWAITING_SECOND  # one person twice is not two people
    s2 = ws.reviews.decide(rev[1], res.search_id, 1, "confirmed", "agree")
    assert s2.status is LeadStatus.CONFIRMED
    ops = [e.record.operation for e in ws.audit.entries()]
    assert ops.count("search") == 1 and ops.count("review") == 3
    search_entry = next(e for e in ws.audit.entries(operation="search"))
    assert search_entry.record.purpose == "missing person"
    assert search_entry.record.candidates[0].subject_id == "008"
    assert ws.audit.verify().ok
    ws.close()


def test_retention_purges_expired_subjects_with_receipts(tmp_path: Path, data_dir: Path) -> None:
    clock = Clock()
    ws = open_workspace(Settings(data_dir=tmp_path), clock=clock)
    ws.store.create_gallery(
        "g", model_id="dlib-resnet-v1", created_by="t", legal_basis="consent", retention_days=30
    )
    me = local_operator(ws, "t")
    img = data_dir / "london/images"
    enrol_image(ws, me, EnrolImage("g", "061", img / "061_neutral.jpg"))
    clock.now += timedelta(days=20)
    enrol_image(ws, me, EnrolImage("g", "062", img / "062_neutral.jpg"))
    clock.now += timedelta(days=5)
    assert apply_retention(ws, me, ApplyRetention()).receipts == []
    clock.now += timedelta(days=6)  # 061 is 31 days old, 062 is 11
    receipts = apply_retention(ws, me, ApplyRetention()).receipts
    assert [r.subject for r in receipts] == ["061"]
    res = search(ws, me, SearchRequest(img / "061_smiling.jpg", ("g",), purpose="t", case_ref="c"))
    assert all(c.external_id != "061" for c in res.faces[0].candidates)
    purge = list(ws.audit.entries(operation="retention_purge"))
    assert purge[-1].record.details["count"] == 1
    assert purge[-1].timestamp == clock.now
    ws.close()


def test_a_probe_kept_by_the_engine_carries_its_faces(tmp_path: Path, data_dir: Path) -> None:
    """The CLI keeps probes through ``search(keep_probe=True)``: the reviewers' record of the
    faces (box, detector, quality) is kept with it, in the shape the API returns."""
    from faceledger.api.schemas import FaceOut

    ws = open_workspace(Settings(data_dir=tmp_path))
    ws.store.create_gallery("g", model_id="dlib-resnet-v1", created_by="t", legal_basis="statute")
    me = local_operator(ws, "t")
    probe = data_dir / "london/images/010_smiling.jpg"
    res = search(ws, me, SearchRequest(probe, ("g",), purpose="t", case_ref="c", keep_probe=True))
    faces = ImageStore(ws.db).probe_faces(res.search_id)
    assert faces is not None and len(faces) == len(res.faces) == 1
    kept = FaceOut.model_validate(faces[0])
    box = res.faces[0].face.detection.box
    assert (kept.box.left, kept.box.bottom) == (box.left, box.bottom)
    assert kept.quality.score == res.faces[0].face.quality.score > 0
    ws.close()


def test_a_field_search_keeps_the_probe_only_when_it_gives_candidates(
    tmp_path: Path, data_dir: Path
) -> None:
    """``keep_probe_only_with_leads`` (the field check page's search): nothing is kept of a
    person who matched no one; a search with candidates keeps its probe for the reviewers."""
    ws = open_workspace(Settings(data_dir=tmp_path))
    create_gallery(ws, local_operator(ws, "t"), CreateGallery("g", "statute"))
    me = local_operator(ws, "t")
    img = data_dir / "london/images"
    enrol_image(ws, me, EnrolImage("g", "010", img / "010_neutral.jpg"))
    images = ImageStore(ws.db)

    def field_search(probe: Path) -> SearchResult:
        req = SearchRequest(
            probe, ("g",), "t", "c", keep_probe=True, keep_probe_only_with_leads=True
        )
        return search(ws, me, req)

    stranger = field_search(img / "020_smiling.jpg")
    assert not stranger.faces[0].candidates and not stranger.probe_kept
    assert images.probe_faces(stranger.search_id) is None
    known = field_search(img / "010_smiling.jpg")
    assert known.faces[0].candidates[0].external_id == "010" and known.probe_kept
    assert images.probe_faces(known.search_id) is not None
    ws.close()


def test_retention_deletes_kept_probes_by_the_shortest_period_of_their_galleries(
    tmp_path: Path, data_dir: Path
) -> None:
    clock = Clock()
    ws = open_workspace(Settings(data_dir=tmp_path), clock=clock)
    for name, days in (("short", 30), ("long", 365), ("open", None), ("gone", 10)):
        ws.store.create_gallery(
            name,
            model_id="dlib-resnet-v1",
            created_by="t",
            legal_basis="statute",
            retention_days=days,
        )
    me = local_operator(ws, "t")
    images = ImageStore(ws.db)
    probe = data_dir / "london/images/010_smiling.jpg"
    data = probe.read_bytes()

    def searched(galleries: list[str]) -> str:
        res = search(ws, me, SearchRequest(probe, tuple(galleries), purpose="t", case_ref="c"))
        images.put_probe(res.search_id, res.probe_sha256, data, "image/jpeg", [])
        return res.search_id

    t0 = clock.now
    both = searched(["short", "long"])  # the shorter period applies: 30 days
    long_only = searched(["long"])
    unlimited = searched(["open"])  # no period set: kept
    orphan = searched(["gone"])
    clock.now = t0 + timedelta(days=20)
    later = searched(["short"])  # its 30 days run from its own search
    delete_gallery(ws, me, DeleteGallery("gone", "mandate ended"))

    def kept() -> set[str]:
        held = set()
        for sid in (both, long_only, unlimited, orphan, later):
            try:
                images.get_probe(sid)
                held.add(sid)
            except NotFound:
                pass
        return held

    clock.now = t0 + timedelta(days=25)  # nothing expired; the deleted gallery's probe goes
    apply_retention(ws, me, ApplyRetention())
    assert kept() == {both, long_only, unlimited, later}
    entry = list(ws.audit.entries(operation="retention_purge"))[-1]
    assert entry.timestamp == clock.now
    assert entry.record.details["probe_images"] == [
        {
            "search_id": orphan,
            "probe_sha256": hashlib.sha256(data).hexdigest(),
            "reason": "every gallery searched has been deleted",
        }
    ]
    assert entry.record.galleries == ("gone",)

    clock.now = t0 + timedelta(days=31)
    apply_retention(
        ws, me, ApplyRetention(gallery="open")
    )  # only probes of searches that named "open"
    assert kept() == {both, long_only, unlimited, later}
    assert apply_retention(ws, me, ApplyRetention()).probes_deleted == [both]
    assert kept() == {long_only, unlimited, later}
    entry = list(ws.audit.entries(operation="retention_purge"))[-1]
    assert entry.record.details["probe_images"] == [
        {
            "search_id": both,
            "probe_sha256": hashlib.sha256(data).hexdigest(),
            "reason": "retention period of 30 days expired",
        }
    ]
    assert entry.record.details["count"] == 1

    clock.now = t0 + timedelta(days=51)
    apply_retention(ws, me, ApplyRetention())
    assert kept() == {long_only, unlimited}
    clock.now = t0 + timedelta(days=366)
    apply_retention(ws, me, ApplyRetention())
    assert kept() == {unlimited}
    # the review record and the audit entry of each search stay: only the image goes
    assert ws.reviews.search(both).search_id == both
    assert ws.audit.verify().ok
    ws.close()


def test_encrypted_templates_need_the_right_key(tmp_path: Path, data_dir: Path) -> None:
    key = tmp_path / "template.key"
    key.write_text(generate_key().hex())
    settings = Settings(data_dir=tmp_path / "ws", template_key=key)
    ws = open_workspace(settings)
    ws.store.create_gallery("g", model_id="dlib-resnet-v1", created_by="t", legal_basis="consent")
    me = local_operator(ws, "t")
    r = enrol_image(ws, me, EnrolImage("g", "070", data_dir / "london/images/070_neutral.jpg"))
    assert r.face.template is not None
    plain = r.face.template.vector.astype("<f4").tobytes()
    db_file = sqlite_path(ws.db)
    ws.close()
    assert plain not in db_file.read_bytes()

    other = tmp_path / "other.key"
    other.write_text(generate_key().hex())
    with pytest.raises(EncryptionKeyError):
        open_workspace(dataclasses.replace(settings, template_key=other))
    with pytest.raises(EncryptionKeyError):
        open_workspace(dataclasses.replace(settings, template_key=None))
    ws = open_workspace(settings)  # the right key: search works
    res = search(
        ws,
        local_operator(ws, "t"),
        SearchRequest(
            data_dir / "london/images/070_smiling.jpg", ("g",), purpose="t", case_ref="c"
        ),
    )
    assert res.faces[0].candidates[0].external_id == "070"
    ws.close()
