"""Live watch: a camera, stream or paced file against a watchlist, alerts as they happen.

Same scanner and per-track search as :mod:`.video`, but decided while the source runs: a
track is searched early, once it has been seen ``ScanSettings.early_hits`` times (bounded
latency), and again when it ends if the early search found nothing (its best faces by then are
better). A track with candidates raises an alert at once: one audit entry and one review
record per alert, its best faces kept for the reviewers. Every other track is discarded when
decided. The watch writes a start entry before the first frame and a stop entry with its
counts (faces seen, tracks searched and discarded, frames dropped because processing fell
behind) however it stops, error included.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faceledger.access import User
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import InvalidArgument
from faceledger.gallery.workspace import Workspace
from faceledger.usecases.search import leads_of
from faceledger.usecases.video import (
    TrackOutcome,
    TrackSearcher,
    keep_track_faces,
    prepare_search,
    track_json,
    video_json,
)
from faceledger.video import (
    Frame,
    ScanSettings,
    TrackFaces,
    VideoLimits,
    VideoReader,
    VideoScanner,
    limits_from,
    open_video,
)

DEFAULT_EARLY_HITS = 3


@dataclass(frozen=True)
class VideoWatchRequest:
    source: str | Path
    """A file (played at its own pace with ``realtime``), a device or an rtsp/http URL."""
    galleries: tuple[str, ...]
    purpose: str | None
    case_ref: str | None
    fpir: float | None = None
    k: int | None = None
    scan: ScanSettings = field(default_factory=lambda: ScanSettings(early_hits=DEFAULT_EARLY_HITS))
    limits: VideoLimits | None = None
    """Default: the workspace settings' ``video_max_*``."""
    realtime: bool = False
    until_s: float | None = None
    """Stop after this many seconds of watching (None: until the source ends or a stop)."""
    keep_faces: bool = True


@dataclass(frozen=True)
class Alert:
    watch_id: str
    audit_seq: int
    search_id: str
    track: TrackOutcome
    latency_s: float
    """Seconds from the track's first sighting to the alert (source time ≈ wall time for a
    live or paced source)."""


@dataclass(frozen=True)
class WatchSummary:
    watch_id: str
    start_seq: int
    stop_seq: int
    stopped_by: str
    """``end`` (source ended), ``until``, ``stop`` (asked to), or an error code."""
    seconds: float
    frames_decoded: int
    frames_sampled: int
    frames_dropped: int
    faces_detected: int
    tracks_searched: int
    tracks_discarded: int
    searches: int
    alerts: int


def describe_source(source: str | Path) -> str:
    """The source as the audit log names it: never credentials or query strings of a URL."""
    text = str(source)
    parts = urlsplit(text)
    if parts.scheme and parts.netloc:
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return Path(text).name


def watch_video(
    ws: Workspace,
    actor: User,
    req: VideoWatchRequest,
    *,
    on_alert: Callable[[Alert], None] | None = None,
    stop: threading.Event | None = None,
) -> WatchSummary:
    """Watch ``req.source`` until it ends, ``req.until_s`` passes or ``stop`` is set."""
    purpose, case_ref = require_purpose(req.purpose, req.case_ref)
    if req.until_s is not None and req.until_s <= 0:
        raise InvalidArgument("--until must be a positive number of seconds")
    engine, plan = prepare_search(ws, actor, req.galleries, req.k, req.fpir, purpose)
    base = AuditRecord(
        operation=AuditOp.VIDEO_WATCH_START,
        actor=actor.id,
        purpose=purpose,
        case_ref=case_ref,
        galleries=tuple(g.name for g in plan.galleries),
        model_id=engine.card.id,
        threshold=round(plan.point.threshold, 6),
        target_fpir=plan.point.target_fpir,
    )
    watch = _Watch(ws, actor, req, base, TrackSearcher(ws, engine, plan), on_alert)
    scanner = VideoScanner(engine, req.scan)
    with open_video(
        req.source,
        req.limits or limits_from(ws.settings),
        sample_fps=req.scan.sample_fps,
        live=True,
        realtime=req.realtime,
    ) as reader:
        start_seq = ws.audit.append(
            _with(
                base,
                {
                    "watch_id": watch.id,
                    "source": describe_source(req.source),
                    "video": video_json(reader.info),
                    **_params(req),
                },
            )
        ).seq
        try:
            watch.stopped_by = _run(watch, scanner, reader, stop)
        except BaseException as exc:
            watch.stopped_by = getattr(exc, "code", type(exc).__name__)
            raise
        finally:
            summary = watch.summary(start_seq, reader, scanner)
    return summary


def _run(
    watch: _Watch, scanner: VideoScanner, frames: Iterable[Frame], stop: threading.Event | None
) -> str:
    """Feed frames until the source ends (``end``), ``until_s`` passes or ``stop`` is set."""
    until = watch.req.until_s
    stopped_by = "end"
    for _, tracks in scanner.scan(frames):
        for track in tracks:
            watch.decide(track)
        if stop is not None and stop.is_set():
            stopped_by = "stop"
            break
        if until is not None and time.monotonic() - watch.started >= until:
            stopped_by = "until"
            break
    for track in scanner.finish():
        watch.decide(track)
    return stopped_by


class _Watch:
    """One watch's decisions and counts."""

    def __init__(
        self,
        ws: Workspace,
        actor: User,
        req: VideoWatchRequest,
        base: AuditRecord,
        searcher: TrackSearcher,
        on_alert: Callable[[Alert], None] | None,
    ) -> None:
        self.ws, self.actor, self.req, self.base = ws, actor, req, base
        self.searcher, self.on_alert = searcher, on_alert
        self.id = uuid.uuid4().hex
        self.started = time.monotonic()
        self.alerted: set[int] = set()
        self.tracks_done = 0
        self.alerts = 0
        self.stopped_by = "end"

    def decide(self, track: TrackFaces) -> None:
        """Search a handed-over track unless it already raised an alert; alert on leads."""
        if track.reason != "early":
            self.tracks_done += 1
        if track.track_id in self.alerted:
            return
        leads = [o for o in self.searcher.decide(track) if o.has_leads]
        if leads:
            self.alerted.add(track.track_id)
        for lead in leads:
            self.alerts += 1
            alert = _alert(
                self.ws, self.actor, self.base, self.id, lead, self.started, self.req.keep_faces
            )
            if self.on_alert is not None:
                self.on_alert(alert)

    def summary(self, start_seq: int, reader: VideoReader, scanner: VideoScanner) -> WatchSummary:
        """Write the stop entry (whatever stopped the watch) and return the counts."""
        seconds = time.monotonic() - self.started
        counts = {
            "watch_id": self.id,
            "start_seq": start_seq,
            "stopped_by": self.stopped_by,
            "seconds": round(seconds, 3),
            "frames_decoded": reader.frames_decoded,
            "frames_sampled": reader.frames_sampled,
            "frames_dropped": reader.frames_dropped,
            "faces_detected": scanner.counts.faces,
            "tracks": self.tracks_done,
            "tracks_discarded": self.tracks_done - len(self.alerted),
            "searches": self.searcher.searched,
            "alerts": self.alerts,
        }
        stop = _with(self.base, counts, operation=AuditOp.VIDEO_WATCH_STOP)
        return WatchSummary(
            watch_id=self.id,
            start_seq=start_seq,
            stop_seq=self.ws.audit.append(stop).seq,
            stopped_by=self.stopped_by,
            seconds=seconds,
            frames_decoded=reader.frames_decoded,
            frames_sampled=reader.frames_sampled,
            frames_dropped=reader.frames_dropped,
            faces_detected=scanner.counts.faces,
            tracks_searched=self.tracks_done,
            tracks_discarded=self.tracks_done - len(self.alerted),
            searches=self.searcher.searched,
            alerts=self.alerts,
        )


def _params(req: VideoWatchRequest) -> dict[str, Any]:
    return {
        "sample_fps": req.scan.sample_fps,
        "detect_max_side": req.scan.detect_max_side,
        "early_hits": req.scan.early_hits,
        "realtime": req.realtime,
        "until_s": req.until_s,
    }


def _with(base: AuditRecord, details: dict[str, Any], operation: str | None = None) -> AuditRecord:
    return replace(base, operation=operation or base.operation, details=details)


def _alert(
    ws: Workspace,
    actor: User,
    base: AuditRecord,
    watch_id: str,
    track: TrackOutcome,
    started: float,
    keep: bool,
) -> Alert:
    """Audit one alert, open it for review, keep its faces; the track's own record."""
    leads = leads_of(track.candidates)
    record = replace(
        base,
        operation=AuditOp.VIDEO_ALERT,
        candidates=leads,
        details={"watch_id": watch_id, "track": track_json(track)},
    )
    seq, (review,) = ws.reviews.record_video_search(actor, record, [leads])
    if keep:
        keep_track_faces(ws, review.search_id, track)
    latency = max(0.0, time.monotonic() - started - track.start_s)
    return Alert(watch_id, seq, review.search_id, replace(track, faces=()), latency)
