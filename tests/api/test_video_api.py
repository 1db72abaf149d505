"""Video search over HTTP on a real composed video and the real model: an upload is checked
and accepted as a job (202), polled to its result, and each lead track becomes a review
record that knows where it lies in the video; refusals leave no job, only the creator (and
auditors) see a job, a running job can be cancelled with nothing recorded, and no upload is
left on disk. The job registry's queue, expiry and shutdown are tested without the model.
The last test opens a lead track's page in a real browser."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from faceledger.access import Role, User
from faceledger.api import ServiceOptions, convert
from faceledger.api.concurrency import SerialEngine
from faceledger.api.jobs import JobState, VideoJobs, save_upload
from faceledger.api.service import video_limits_for
from faceledger.audit import AuditEntry, AuditOp, AuditRecord
from faceledger.errors import Cancelled, Conflict, NotFound, PermissionDenied, RateLimited
from faceledger.errors import TooLarge as TooLargeError
from faceledger.usecases import VideoProgress
from faceledger.video import VideoInfo, VideoLimits
from faceledger.video.synth import compose, default_scenario
from tests.api.live import GALLERY, Deployment, Live, deploy, serve

API = "/api/v1"
WHY = {"purpose": "locate two missing people", "case_ref": "CASE-V-7"}
FINISHED = {"done", "failed", "cancelled"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

Site = tuple[Live, Deployment]


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> bytes:
    """The composed 8 s scene: 001 and 005 (to be enrolled) and two people who are not."""
    appearances, shots, _ = default_scenario(data_dir / "london" / "images")
    dest = tmp_path_factory.mktemp("video") / "scene.mp4"
    compose(dest, appearances, shots)
    return dest.read_bytes()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    serial_engine: SerialEngine,
    london: dict[str, bytes],
) -> Iterator[Site]:
    """A deployment with 001 and 005 enrolled from their neutral images through the API, and
    an ``outsider``: a searcher holding no grant on the gallery."""
    dep = deploy(tmp_path_factory.mktemp("video-site") / "ws", serial_engine)
    admin = dep.user("admin")
    dep.ws.access.create_user("outsider", [Role.SEARCHER], by=admin)
    dep.tokens["outsider"] = dep.ws.access.issue_api_key("outsider", by=admin).token
    try:
        with serve(dep) as live:
            with live.client() as c:
                stems = ["001_neutral", "005_neutral"]
                r = c.post(
                    f"{API}/galleries/{GALLERY}/enrolments",
                    files=[("images", (f"{s}.jpg", london[s], "image/jpeg")) for s in stems],
                    data={"subjects": ["001", "005"]},
                    headers=dep.headers("enroller"),
                )
                assert r.status_code == 200 and r.json()["enrolled"] == 2, r.text
            yield live, dep
    finally:
        dep.ws.close()


def _post(
    c: httpx.Client, dep: Deployment, video: bytes, who: str = "searcher", **form: object
) -> httpx.Response:
    data: dict[str, object] = {"galleries": [GALLERY], **WHY, **form}
    return c.post(
        f"{API}/video-searches",
        files={"video": ("scene.mp4", video, "video/mp4")},
        data={k: v for k, v in data.items() if v is not None},
        headers=dep.headers(who),
    )


def _poll(
    c: httpx.Client,
    dep: Deployment,
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 120.0,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(f"{API}/video-searches/{job_id}", headers=dep.headers("searcher"))
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job['progress']}"
        time.sleep(0.2)


def _leftover_uploads(dep: Deployment) -> list[Path]:
    tmp = dep.settings.data_dir / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def _video_search_entries(c: httpx.Client, dep: Deployment) -> list[dict[str, Any]]:
    r = c.get(
        f"{API}/audit/entries",
        params={"operation": "video_search"},
        headers=dep.headers("auditor"),
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@pytest.fixture(scope="module")
def done(site: Site, video_bytes: bytes) -> tuple[httpx.Response, dict[str, Any]]:
    """One video search, accepted and polled to its end (shared by the tests that read it)."""
    live, dep = site
    with live.client() as c:
        accepted = _post(c, dep, video_bytes)
        assert accepted.status_code == 202, accepted.text
        job = _poll(c, dep, accepted.json()["job_id"], lambda j: j["status"] in FINISHED)
    return accepted, job


def _lead_tracks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in job["result"]["tracks"] if t["outcome"] == "candidates"]


def test_accepted_video_runs_to_lead_tracks_naming_the_enrolled_people(
    site: Site, done: tuple[httpx.Response, dict[str, Any]], video_bytes: bytes
) -> None:
    _, dep = site
    accepted, job = done
    body = accepted.json()
    assert body["status"] in {"queued", "running"}
    assert body["status_url"] == f"{API}/video-searches/{body['job_id']}"
    assert accepted.headers["location"] == body["status_url"]

    assert job["status"] == "done", job["error"]
    assert job["actor"] == "searcher" and job["galleries"] == [GALLERY]
    assert job["video"]["width"] == 640 and job["video"]["height"] == 480
    assert job["video"]["sha256"] == hashlib.sha256(video_bytes).hexdigest()
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["frames_sampled"] > 0
    assert job["error"] is None and job["cancel_requested"] is False

    result = job["result"]
    assert result["video"]["sha256"] == job["video"]["sha256"]
    leads = _lead_tracks(job)
    named = {t["candidates"][0]["subject"] for t in leads}
    assert {"001", "005"} <= named, result["tracks"]
    assert all(t["search_id"] for t in leads)
    assert result["tracks_searched"] >= 3  # 001 twice (a cut between), 005, and the others
    assert result["expected_false_alerts"] == pytest.approx(
        result["tracks_searched"] * result["target_fpir"], abs=1e-6
    )
    assert _leftover_uploads(dep) == []


def test_each_lead_track_is_a_review_record_placed_in_its_video(
    site: Site, done: tuple[httpx.Response, dict[str, Any]], london: dict[str, bytes]
) -> None:
    live, dep = site
    _, job = done
    result, leads = job["result"], _lead_tracks(job)
    track = next(t for t in leads if t["candidates"][0]["subject"] == "005")
    with live.client() as c:
        r = c.get(f"{API}/searches/{track['search_id']}", headers=dep.headers("reviewer"))
        assert r.status_code == 200, r.text
        rec = r.json()
        assert rec["purpose"] == WHY["purpose"] and rec["case_ref"] == WHY["case_ref"]
        assert rec["leads"][0]["subject"] == "005"
        video = rec["video"]
        assert video["kind"] == "video_search"
        assert video["duration_s"] == pytest.approx(8.0, abs=0.2)
        assert video["video_sha256"] == result["video"]["sha256"]
        mine = video["track"]
        assert (mine["track_id"], mine["faces_used"]) == (track["track_id"], track["faces_used"])
        assert mine["start_s"] == pytest.approx(track["start_s"], abs=1e-3)
        assert mine["end_s"] == pytest.approx(track["end_s"], abs=1e-3)
        assert len(video["other_tracks"]) == len(leads) - 1
        assert video["tracks_searched"] == result["tracks_searched"]
        assert video["expected_false_alerts"] == pytest.approx(result["expected_false_alerts"])
        # the kept "probe" is the strip of the track's best faces, each with when it was seen
        assert len(rec["probe_faces"]) == len(video["faces"]) == track["faces_used"]
        assert all(
            mine["start_s"] - 1e-3 <= f["time_s"] <= mine["end_s"] + 1e-3 for f in video["faces"]
        )
        probe = c.get(f"{API}/searches/{track['search_id']}/probe", headers=dep.headers("reviewer"))
        assert probe.status_code == 200 and probe.headers["content-type"] == "image/jpeg"
        assert probe.content[:2] == b"\xff\xd8"

        # one audit entry for the whole video, its review records in the order of lead_tracks
        (entry,) = _video_search_entries(c, dep)
        assert entry["seq"] == result["audit_seq"] == rec["audit_seq"]
        assert entry["details"]["track_search_ids"] == [t["search_id"] for t in leads]
        assert entry["details"]["video_search_id"] == result["video_search_id"]

        # an image search's record has no video context
        r = c.post(
            f"{API}/search",
            files={"image": ("probe.jpg", london["005_smiling"], "image/jpeg")},
            data={"galleries": [GALLERY], **WHY},
            headers=dep.headers("searcher"),
        )
        assert r.status_code == 200, r.text
        r = c.get(f"{API}/searches/{r.json()['search_id']}", headers=dep.headers("reviewer"))
        assert r.json()["video"] is None and r.json()["leads"][0]["subject"] == "005"


def test_refusals_are_given_before_any_job_exists(site: Site, video_bytes: bytes) -> None:
    live, dep = site
    jobs = live.service.video_jobs
    before = len(jobs)
    with live.client() as c:
        r = _post(c, dep, video_bytes, purpose=None)
        assert r.status_code == 422 and r.json()["code"] == "purpose_required", r.text
        r = _post(c, dep, video_bytes, case_ref="  ")
        assert r.status_code == 422 and r.json()["code"] == "purpose_required", r.text
        r = _post(c, dep, b"this is a text file, not a video\n" * 20)
        assert r.status_code == 400 and r.json()["code"] == "bad_video", r.text
        r = _post(c, dep, video_bytes, who="outsider")  # searcher, but no grant on the gallery
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", r.text
        r = _post(c, dep, video_bytes, who="reviewer")  # a grant, but not the searcher role
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", r.text
        r = _post(c, dep, video_bytes, galleries=["nowhere"])  # as image search: no grant
        assert r.status_code == 403, r.text
        r = _post(c, dep, video_bytes, sample_fps=500)
        assert r.status_code == 422, r.text
    assert len(jobs) == before
    assert _leftover_uploads(dep) == []


def test_only_the_creator_and_auditors_see_a_job(
    site: Site, done: tuple[httpx.Response, dict[str, Any]]
) -> None:
    live, dep = site
    _, job = done
    url = f"{API}/video-searches/{job['job_id']}"
    with live.client() as c:
        for who in ("reviewer", "outsider", "enroller"):
            r = c.get(url, headers=dep.headers(who))
            assert r.status_code == 404 and r.json()["code"] == "not_found", (who, r.text)
            assert c.delete(url, headers=dep.headers(who)).status_code == 404
        r = c.get(url, headers=dep.headers("auditor"))
        assert r.status_code == 200 and r.json()["status"] == "done"
        assert c.delete(url, headers=dep.headers("auditor")).status_code == 403
        r = c.delete(url, headers=dep.headers("searcher"))  # already ended
        assert r.status_code == 409 and r.json()["code"] == "conflict"
        r = c.get(f"{API}/video-searches/{'0' * 32}", headers=dep.headers("searcher"))
        assert r.status_code == 404


def test_a_running_job_is_cancelled_and_records_nothing(
    site: Site, video_bytes: bytes, done: tuple[httpx.Response, dict[str, Any]]
) -> None:
    live, dep = site
    with live.client() as c:
        entries = len(_video_search_entries(c, dep))
        # every frame examined: ~200 frames, far longer than it takes to cancel
        r = _post(c, dep, video_bytes, sample_fps=25)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        running = _poll(
            c,
            dep,
            job_id,
            lambda j: j["status"] != "queued" and j["progress"]["frames_sampled"] >= 2,
        )
        assert running["status"] == "running", running
        assert 0 < running["progress"]["fraction"] < 1
        r = c.delete(f"{API}/video-searches/{job_id}", headers=dep.headers("searcher"))
        assert r.status_code == 202, r.text
        assert r.json()["cancel_requested"] is True
        ended = _poll(c, dep, job_id, lambda j: j["status"] in FINISHED, timeout=60)
        assert ended["status"] == "cancelled"
        assert ended["result"] is None and ended["error"] is None
        assert len(_video_search_entries(c, dep)) == entries
        r = c.delete(f"{API}/video-searches/{job_id}", headers=dep.headers("searcher"))
        assert r.status_code == 409
    assert _leftover_uploads(dep) == []


def test_an_upload_over_the_video_limit_is_refused_and_not_kept(
    tmp_path: Path, serial_engine: SerialEngine, video_bytes: bytes
) -> None:
    dep = deploy(tmp_path / "ws", serial_engine)
    options = ServiceOptions(video_limits=VideoLimits(max_bytes=len(video_bytes) - 1))
    try:
        with serve(dep, options) as live, live.client() as c:
            r = _post(c, dep, video_bytes)
            assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
            assert len(live.service.video_jobs) == 0
        assert _leftover_uploads(dep) == []
    finally:
        dep.ws.close()


def test_uploads_follow_the_workspace_video_limits_unless_the_service_sets_its_own(
    tmp_path: Path, serial_engine: SerialEngine, video_bytes: bytes
) -> None:
    dep = deploy(tmp_path / "ws", serial_engine, video_max_seconds=1.0)
    try:
        with serve(dep, ServiceOptions()) as live, live.client() as c:
            assert live.service.video_limits.max_duration_s == 1.0
            assert live.service.video_limits.max_bytes == 1024**3  # uploads capped
            r = _post(c, dep, video_bytes)
            assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
            assert "the limit is 1 s" in r.json()["detail"], r.text
            assert len(live.service.video_jobs) == 0
        assert _leftover_uploads(dep) == []
        own = ServiceOptions(video_limits=VideoLimits(max_duration_s=3600.0))
        assert video_limits_for(dep.ws.settings, own) == own.video_limits
    finally:
        dep.ws.close()


def _entry(operation: AuditOp, details: dict[str, Any]) -> AuditEntry:
    record = AuditRecord(operation=operation, actor="searcher", details=details)
    return AuditEntry(7, datetime.now(UTC), record, "0" * 64, "1" * 64)


def test_a_live_alert_is_placed_without_a_duration_and_bad_details_say_nothing() -> None:
    track = {"track_id": 3, "start_s": 1.5, "end_s": 2.25, "faces_seen": 9, "faces_used": 5}
    alert = _entry(AuditOp.VIDEO_ALERT, {"track": track, "track_search_ids": ["a" * 32]})
    faces = ({"time_s": 1.6, "frame": 40, "box": {}},)
    video = convert.video_context(alert, "a" * 32, faces)
    assert video is not None and video.kind == "video_alert"
    assert (video.duration_s, video.tracks_searched, video.other_tracks) == (None, None, [])
    assert video.track.track_id == 3 and video.faces[0].time_s == 1.6
    # not this entry's track, a mismatched list, an image search: no video context
    assert convert.video_context(alert, "b" * 32, None) is None
    broken = _entry(AuditOp.VIDEO_SEARCH, {"track_search_ids": ["a" * 32], "lead_tracks": []})
    assert convert.video_context(broken, "a" * 32, None) is None
    image = _entry(AuditOp.SEARCH, {"search_id": "a" * 32})
    assert convert.video_context(image, "a" * 32, None) is None


# -- the registry alone (no model, no video) ---------------------------------------------


INFO = VideoInfo("0" * 64, "mp4", "h264", 640, 480, 25.0, 10.0, 250)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _user(uid: str, *roles: Role) -> User:
    return User(uid, frozenset(roles or (Role.SEARCHER,)))


def _wait_state(jobs: VideoJobs, job_id: str, user: User, state: JobState) -> None:
    deadline = time.monotonic() + 10
    while jobs.get(job_id, user).state != state:
        assert time.monotonic() < deadline, jobs.get(job_id, user)
        time.sleep(0.01)


def test_registry_queues_refuses_cancels_expires_and_cleans_up(tmp_path: Path) -> None:
    clock = Clock()
    jobs = VideoJobs(tmp_path / "tmp", workers=1, max_queued=1, ttl_s=60, clock=clock)
    alice, bob = _user("alice"), _user("bob")
    auditor = _user("audrey", Role.AUDITOR)
    release = threading.Event()

    def blocked(
        cancel: threading.Event, progress: Callable[[VideoProgress], None]
    ) -> dict[str, Any]:
        progress(VideoProgress(2.5, 10.0, 12, 1, 0))
        release.wait(10)
        return {"ok": True}

    def upload() -> Path:
        path = jobs.upload_path()
        path.write_bytes(b"video")
        assert path.stat().st_mode & 0o777 == 0o600
        return path

    first = jobs.submit(alice, ("g",), INFO, upload(), blocked)
    _wait_state(jobs, first.id, alice, "running")
    assert jobs.get(first.id, alice).progress.fraction == 0.25
    second = jobs.submit(alice, ("g",), INFO, upload(), blocked)
    with pytest.raises(RateLimited):
        jobs.check_room()
    with pytest.raises(RateLimited):
        jobs.submit(alice, ("g",), INFO, tmp_path / "never-used", blocked)

    # others do not see a job; auditors see it but may not cancel it
    with pytest.raises(NotFound):
        jobs.get(first.id, bob)
    assert jobs.get(first.id, auditor).id == first.id
    with pytest.raises(PermissionDenied):
        jobs.cancel(first.id, auditor)

    # a queued job is cancelled at once, its upload deleted
    cancelled = jobs.cancel(second.id, alice)
    assert cancelled.state == "cancelled" and not second.upload.exists()
    release.set()
    _wait_state(jobs, first.id, alice, "done")
    assert jobs.get(first.id, alice).result == {"ok": True}
    assert not first.upload.exists()
    with pytest.raises(Conflict):
        jobs.cancel(first.id, alice)

    # finished jobs are forgotten after the TTL
    clock.now += 61
    with pytest.raises(NotFound):
        jobs.get(first.id, alice)
    assert len(jobs) == 0
    jobs.close()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_registry_records_failures_and_stops_running_jobs_on_close(tmp_path: Path) -> None:
    jobs = VideoJobs(tmp_path / "tmp", workers=1, max_queued=4)
    alice = _user("alice")

    def bad(cancel: threading.Event, progress: Callable[[VideoProgress], None]) -> dict[str, Any]:
        raise TooLargeError("the video is too long")

    def crash(cancel: threading.Event, progress: Callable[[VideoProgress], None]) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    def endless(
        cancel: threading.Event, progress: Callable[[VideoProgress], None]
    ) -> dict[str, Any]:
        while not cancel.wait(0.01):
            pass
        raise Cancelled("stopped")

    failed = jobs.submit(alice, ("g",), INFO, jobs.upload_path(), bad)
    crashed = jobs.submit(alice, ("g",), INFO, jobs.upload_path(), crash)
    _wait_state(jobs, crashed.id, alice, "failed")
    err = jobs.get(failed.id, alice).error
    assert err is not None and (err.code, err.message) == ("too_large", "the video is too long")
    err = jobs.get(crashed.id, alice).error
    assert err is not None and err.code == "internal_error" and "secret" not in err.message

    running = jobs.submit(alice, ("g",), INFO, jobs.upload_path(), endless)
    waiting = jobs.submit(alice, ("g",), INFO, jobs.upload_path(), endless)
    _wait_state(jobs, running.id, alice, "running")
    jobs.close()
    assert jobs.get(running.id, alice).state == "cancelled"
    assert jobs.get(waiting.id, alice).state == "cancelled"
    assert list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(RateLimited):  # closed: nothing new is taken
        jobs.check_room()


def test_an_upload_over_the_limit_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(b"x" * 5000)
    with src.open("rb") as fh, pytest.raises(TooLargeError):
        save_upload(fh, tmp_path / "copy", 4096)
    with src.open("rb") as fh:
        assert save_upload(fh, tmp_path / "copy", 5000) == 5000


# -- the review UI (last: Playwright keeps an event loop open in this thread) --------------


def test_a_lead_track_page_shows_its_place_in_the_video(
    browser: Browser, site: Site, done: tuple[httpx.Response, dict[str, Any]]
) -> None:
    live, dep = site
    _, job = done
    track = _lead_tracks(job)[0]
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live.url}/ui/#/")
    page.fill("#key", dep.tokens["reviewer"])
    page.click("#signin-submit")
    expect(page.locator("#who")).to_contain_text("reviewer")
    page.goto(f"{live.url}/ui/#/searches/{track['search_id']}")
    expect(page.locator("h1")).to_have_text("Video search")
    timeline = page.locator("svg#video-timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator("rect.this")).to_have_count(1)
    expect(timeline.locator("rect.other")).to_have_count(len(_lead_tracks(job)) - 1)
    expect(page.locator("#probe figcaption")).to_have_text("Best faces of the track")
    expect(page.locator("#probe img")).to_be_visible()
    expect(page.locator("#video-duration")).to_contain_text("Video of 8.0 s")
    expect(page.locator("#video-track")).to_contain_text(f"Track {track['track_id']}")
    expect(page.locator("#video-counts")).to_contain_text(
        f"{job['result']['tracks_searched']} tracks searched, expected false alerts"
    )
    page.screenshot(path=str(ARTIFACTS / "video-lead-track.png"), full_page=True)
    context.close()
    assert errors == []
