"""Video search end to end: a composed video with known people, the real model, a real store.

The video (``faceledger.video.synth.default_scenario``) has two shots: enrolled people 001 and
005 and two people who are not enrolled (004, 006), 001 in both shots. The gallery holds 001,
005 and 40 other London people. Checked: the enrolled people are found in the right time
ranges, a track never crosses the shot cut, nobody else gives a candidate, and nothing of a
track without a candidate is kept anywhere (store, index, audit log, files).
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceledger import Settings
from faceledger.audit import AuditOp
from faceledger.errors import BadVideo, Cancelled
from faceledger.gallery import Workspace, local_operator, open_workspace
from faceledger.usecases import (
    CreateGallery,
    EnrolFolder,
    VideoSearchRequest,
    VideoSearchResult,
    VideoWatchRequest,
    create_gallery,
    enrol_folder,
    search_video,
    watch_video,
)
from faceledger.video import Appearance, ScanSettings, Shot, compose, default_scenario

W, H = 640, 480
NOT_ENROLLED = {"004", "006"}


@dataclass
class Setup:
    ws: Workspace
    data: Path
    video: Path
    appearances: list[Appearance]
    enrolled: set[str]


def _label(a: Appearance) -> str:
    return a.label.split(":")[-1]


def _who(appearances: list[Appearance], t: float, x: float, y: float) -> str | None:
    """The appearance whose face centre is nearest (x, y) at time t, if one is close."""
    best, dist = None, 1e9
    for a in appearances:
        if not a.start_s - 0.3 <= t <= a.end_s + 0.3:
            continue
        f = min(1.0, max(0.0, (t - a.start_s) / max(1e-6, a.end_s - a.start_s)))
        cx = (a.start_xy[0] + f * (a.end_xy[0] - a.start_xy[0])) * W
        cy = (a.start_xy[1] + f * (a.end_xy[1] - a.start_xy[1])) * H
        d = ((cx - x) ** 2 + (cy - y) ** 2) ** 0.5
        if d < dist:
            best, dist = a, d
    return _label(best) if best is not None and dist < 80 else None


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("video")
    london = data_dir / "london" / "images"
    appearances, shots, enrolled = default_scenario(london)
    video = root / "scenario.mp4"
    compose(video, appearances, shots)
    ids = {e.split(":")[-1] for e in enrolled}
    subjects = sorted({p.name.split("_")[0] for p in london.glob("*_neutral.jpg")})
    others = [s for s in subjects if s not in ids and s not in NOT_ENROLLED][:40]
    rows = [(str(london / f"{s}_neutral.jpg"), s) for s in sorted(ids) + others]
    listing = root / "gallery.csv"
    with listing.open("w", newline="") as f:
        csv.writer(f).writerows([("image", "subject"), *rows])
    data = root / "ws"
    ws = open_workspace(Settings(data_dir=data))
    me = local_operator(ws, "officer")
    create_gallery(ws, me, CreateGallery("watchlist", "statute"))
    me = local_operator(ws, "officer")
    enrol_folder(ws, me, EnrolFolder("watchlist", listing))
    yield Setup(ws, data, video, appearances, ids)
    ws.close()


def _request(s: Setup, video: Path | bytes | None = None) -> VideoSearchRequest:
    return VideoSearchRequest(
        video if video is not None else s.video, ("watchlist",), "test: find", "CASE-1"
    )


@pytest.fixture(scope="module")
def searched(setup: Setup) -> tuple[VideoSearchResult, set[Path], set[Path]]:
    before = {p for p in setup.data.rglob("*") if p.is_file()}
    me = local_operator(setup.ws, "officer")
    res = search_video(setup.ws, me, _request(setup))
    after = {p for p in setup.data.rglob("*") if p.is_file()}
    return res, before, after


def test_enrolled_people_are_found_in_their_time_ranges(
    setup: Setup, searched: tuple[VideoSearchResult, set[Path], set[Path]]
) -> None:
    res = searched[0]
    assert res.video.width == W and res.video.height == H
    assert res.shot_cuts == 1
    found: dict[str, list[tuple[float, float]]] = {}
    for t in res.lead_tracks:
        mid = len(t.keyframes) // 2
        time_s, box = t.keyframes[mid]
        who = _who(setup.appearances, time_s, box.center.x, box.center.y)
        top = t.candidates[0].external_id
        assert who == top, f"track {t.track_id} at {time_s:.1f}s is {who}, rank 1 is {top}"
        found.setdefault(top, []).append((t.start_s, t.end_s))
    assert set(found) == setup.enrolled
    # 001 appears in both shots: two tracks, neither crossing the cut at 4 s
    spans = sorted(found["001"])
    assert len(spans) == 2
    assert spans[0][1] < 4.0 <= spans[1][0]
    for label, ranges in found.items():
        truth = [a for a in setup.appearances if _label(a) == label]
        for start, end in ranges:
            assert any(a.start_s - 0.3 <= start and end <= a.end_s + 0.3 for a in truth)
    # everybody in the video was tracked and searched once (at least one track each)
    assert res.tracks_searched >= len(setup.appearances)
    assert res.tracks_discarded == res.tracks_searched - len(res.lead_tracks)
    assert res.expected_false_alerts == pytest.approx(res.tracks_searched * res.target_fpir)
    assert res.frames_sampled < res.frames_decoded


def test_people_not_enrolled_give_no_candidate(
    setup: Setup, searched: tuple[VideoSearchResult, set[Path], set[Path]]
) -> None:
    res = searched[0]
    named = {c.external_id for t in res.lead_tracks for c in t.candidates}
    assert not named & NOT_ENROLLED  # not enrolled, so never a candidate
    no_cand = [t for t in res.tracks if t.outcome == "no_candidate"]
    assert len(no_cand) >= len(NOT_ENROLLED)
    for t in no_cand:  # nothing of them but their span and counts
        assert t.candidates == () and t.thumbnail is None and t.keyframes == ()
        assert t.best_box is None and t.search_id is None


def test_discarded_tracks_leave_nothing_in_store_index_log_or_files(
    setup: Setup, searched: tuple[VideoSearchResult, set[Path], set[Path]]
) -> None:
    res, before, after = searched
    ws = setup.ws
    # files: the search wrote no file of its own (only the databases grow)
    new = {p.name for p in after - before}
    assert new <= {"faceledger.db-journal", "faceledger.db-wal", "faceledger.db-shm"}, new
    # index and templates: exactly the 42 enrolled
    gallery = ws.store.get_gallery_by_name("watchlist")
    assert len(ws.indexes.get(gallery, 128)) == 42
    with ws.store.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from templates")).scalar_one() == 42
        probes = conn.execute(sa.text("select search_id, faces from probe_images")).all()
    # kept faces: one strip per lead track, each face inside its track's span
    by_id = {t.search_id: t for t in res.lead_tracks}
    assert {p.search_id for p in probes} == set(by_id)
    for p in probes:
        track = by_id[p.search_id]
        for face in json.loads(p.faces):
            assert track.start_s - 1e-3 <= face["time_s"] <= track.end_s + 1e-3
    # review desk: one record per lead track, none for the rest
    entry = ws.audit.get(res.audit_seq)
    assert entry.record.operation == AuditOp.VIDEO_SEARCH
    details = entry.record.details
    assert details["track_search_ids"] == [t.search_id for t in res.lead_tracks]
    assert [t["track_id"] for t in details["lead_tracks"]] == [t.track_id for t in res.lead_tracks]
    assert details["tracks_discarded"] == res.tracks_discarded
    text = json.dumps(details)
    assert '"box"' not in text and "thumbnail" not in text
    for t in res.lead_tracks:
        assert ws.reviews.search(str(t.search_id)).leads


def test_bad_video_is_refused_and_nothing_is_recorded(setup: Setup, tmp_path: Path) -> None:
    me = local_operator(setup.ws, "officer")
    head = setup.ws.audit.head().seq
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n")
    with pytest.raises(BadVideo):
        search_video(setup.ws, me, _request(setup, bad))
    truncated = setup.video.read_bytes()[:20_000]
    with pytest.raises(BadVideo):
        search_video(setup.ws, me, _request(setup, truncated))
    assert setup.ws.audit.head().seq == head


def test_a_video_without_faces_gives_zero_tracks(setup: Setup, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    compose(empty, [], [Shot(0.0, 2.0, seed=3)])
    me = local_operator(setup.ws, "officer")
    res = search_video(setup.ws, me, _request(setup, empty))
    assert res.tracks_searched == 0 and res.tracks == ()
    assert setup.ws.audit.get(res.audit_seq).record.details["tracks_searched"] == 0


def test_cancelled_search_records_nothing(setup: Setup) -> None:
    me = local_operator(setup.ws, "officer")
    head = setup.ws.audit.head().seq
    cancel = threading.Event()
    seen = []

    def progress(p: object) -> None:
        seen.append(p)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        search_video(setup.ws, me, _request(setup), progress=progress, cancel=cancel)
    assert setup.ws.audit.head().seq == head


def test_watch_alerts_while_the_video_plays(setup: Setup) -> None:
    me = local_operator(setup.ws, "officer")
    alerts = []
    req = VideoWatchRequest(
        str(setup.video),
        ("watchlist",),
        "test: watch",
        "CASE-2",
        scan=ScanSettings(early_hits=3),
        realtime=True,
    )
    summary = watch_video(setup.ws, me, req, on_alert=alerts.append)
    assert {a.track.candidates[0].external_id for a in alerts} == setup.enrolled
    # raised by the early search, within the first seconds of each track (video time, not
    # wall time: how fast this machine runs is the benchmark's business)
    assert all(a.track.end_s - a.track.start_s < 2.0 for a in alerts), [a.track for a in alerts]
    assert summary.alerts == len(alerts) and summary.stopped_by == "end"
    assert summary.seconds >= 0.7 * 8.0  # played at its own pace
    ops = [
        setup.ws.audit.get(seq).record.operation
        for seq in range(summary.start_seq, summary.stop_seq + 1)
    ]
    assert ops[0] == AuditOp.VIDEO_WATCH_START and ops[-1] == AuditOp.VIDEO_WATCH_STOP
    assert ops.count(AuditOp.VIDEO_ALERT) == len(alerts)
    stop = setup.ws.audit.get(summary.stop_seq).record.details
    assert stop["alerts"] == len(alerts) and stop["frames_dropped"] == summary.frames_dropped
