"""Video search: a recorded video against galleries, one search per tracked person.

Frames are sampled, faces detected and tracked (:mod:`faceledger.video`); each track's best
faces are fused into one template and searched ONCE, at the declared FPIR, with the same
gallery-size logic, normalisation and candidate lists as image search. A track whose search
gives no candidate is discarded at once: its chips, thumbnails and template are dropped when
it is decided and only counts are recorded. Tracks with leads are kept in memory until the
video is done, then written together: one audit entry for the whole video (hash, parameters,
counts, leads) and, per lead track, a review record whose kept "probe" is a strip of the
track's best faces, so reviewers compare them with the enrolled image under the two-person
rule. Nothing is written before the video has been read to its end: a bad or cancelled video
leaves no trace in the store but what the caller's error handling logs.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.access import User
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import Cancelled, FaceLedgerError, PermissionDenied
from faceledger.gallery.workspace import Workspace
from faceledger.match.identify import Candidate, FaceCandidates
from faceledger.pipeline import Engine
from faceledger.serialize import quality_to_dict
from faceledger.types import Box, FaceResult, Pixels
from faceledger.usecases.search import (
    SearchPlan,
    leads_of,
    plan_search,
    search_face,
    search_terms,
)
from faceledger.usecases.sharing import sharing_terms
from faceledger.video import (
    Frame,
    ScanSettings,
    TrackFace,
    TrackFaces,
    VideoInfo,
    VideoLimits,
    VideoScanner,
    fuse,
    limits_from,
    open_video,
)

VideoInput = Path | bytes


@dataclass(frozen=True)
class VideoSearchRequest:
    video: VideoInput
    galleries: tuple[str, ...]
    purpose: str | None
    case_ref: str | None
    fpir: float | None = None
    """Target FPIR per track searched (default ``Settings.default_fpir``)."""
    k: int | None = None
    scan: ScanSettings = field(default_factory=ScanSettings)
    limits: VideoLimits | None = None
    """Default: the workspace settings' ``video_max_*``."""
    keep_faces: bool = True
    """Keep each lead track's best faces for its reviewers (tracks without a lead: never)."""


@dataclass(frozen=True)
class VideoProgress:
    seconds_read: float
    duration_s: float | None
    frames_sampled: int
    tracks_searched: int
    tracks_with_leads: int


@dataclass(frozen=True)
class TrackOutcome:
    """One searched track. Tracks without a candidate carry only their span and counts."""

    track_id: int
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    faces_seen: int
    faces_used: int
    outcome: str
    """``candidates`` or ``no_candidate``."""
    candidates: tuple[Candidate, ...] = ()
    search_id: str | None = None
    """The lead track's review record (its kept faces and verdicts)."""
    best_time_s: float | None = None
    best_box: Box | None = None
    best_quality: float | None = None
    thumbnail: Pixels | None = field(default=None, repr=False)
    keyframes: tuple[tuple[float, Box], ...] = field(default=(), repr=False)
    faces: tuple[TrackFace, ...] = field(default=(), repr=False)
    """A lead track's best faces used (kept until written for reviewers)."""

    @property
    def has_leads(self) -> bool:
        return bool(self.candidates)


@dataclass(frozen=True)
class VideoSearchResult:
    video_search_id: str
    audit_seq: int
    video: VideoInfo
    galleries: tuple[str, ...]
    model_id: str
    target_fpir: float
    threshold: float
    templates_searched: int
    frames_decoded: int
    frames_sampled: int
    faces_detected: int
    shot_cuts: int
    tracks_searched: int
    tracks_discarded: int
    tracks_too_short: int
    tracks: tuple[TrackOutcome, ...]
    processing_seconds: float
    faces_kept: bool = False

    @property
    def expected_false_alerts(self) -> float:
        """Tracks searched × target FPIR: how many lead tracks chance alone should give."""
        return self.tracks_searched * self.target_fpir

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of video per second of processing (None when the duration is unknown)."""
        duration = self.video.duration_s
        if not duration or self.processing_seconds <= 0:
            return None
        return duration / self.processing_seconds

    @property
    def lead_tracks(self) -> tuple[TrackOutcome, ...]:
        return tuple(t for t in self.tracks if t.has_leads)


@dataclass
class TrackSearcher:
    """Search tracks one at a time with one plan; keep what leads need, drop the rest."""

    ws: Workspace
    engine: Engine
    plan: SearchPlan
    searched: int = 0
    discarded: int = 0

    def decide(self, track: TrackFaces) -> list[TrackOutcome]:
        """Fuse and search ``track`` (one search per group of faces that look alike)."""
        out = []
        for fused in fuse(self.engine, track):
            best = fused.faces[0]
            face = FaceResult(best.detection, best.quality, fused.template, selection="track")
            result: FaceCandidates = search_face(self.ws, self.plan, face)
            self.searched += 1
            if not result.candidates:
                # discarded: nothing of its faces or template leaves this function
                self.discarded += 1
                out.append(_span(track, len(fused.faces), "no_candidate"))
                continue
            out.append(
                replace(
                    _span(track, len(fused.faces), "candidates"),
                    candidates=result.candidates,
                    best_time_s=best.time_s,
                    best_box=best.detection.box,
                    best_quality=best.quality.score,
                    thumbnail=best.thumbnail,
                    keyframes=track.keyframes,
                    faces=fused.faces,
                )
            )
        return out


def _span(track: TrackFaces, used: int, outcome: str) -> TrackOutcome:
    """A searched track's span and counts: all a track without a candidate keeps."""
    return TrackOutcome(
        track_id=track.track_id,
        start_s=round(track.start_s, 3),
        end_s=round(track.end_s, 3),
        first_frame=track.first_frame,
        last_frame=track.last_frame,
        faces_seen=track.faces_seen,
        faces_used=used,
        outcome=outcome,
    )


def prepare_search(
    ws: Workspace,
    actor: User,
    names: Sequence[str],
    k: int | None,
    fpir: float | None,
    purpose: str,
) -> tuple[Engine, SearchPlan]:
    """Authorise the galleries and fix the operating point every track is searched at.

    Another organisation's gallery is searched within its agreement (purpose, cap); one
    shared with redacted leads is refused: its owner would have to release every alert."""
    gals, k_, fpir_ = search_terms(ws, actor, names, k, fpir)
    use = sharing_terms(ws, actor, gals, purpose)
    if use.redacted:
        raise PermissionDenied(
            f"galleries {', '.join(sorted(use.redacted))} are shared with redacted leads: "
            "search them with an image, whose leads their owner can release"
        )
    plan = replace(plan_search(ws, gals, k_, fpir_), sharing=use)
    return ws.engine_for(gals[0]), plan


def search_video(
    ws: Workspace,
    actor: User,
    req: VideoSearchRequest,
    *,
    progress: Callable[[VideoProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> VideoSearchResult:
    """Search every person tracked in ``req.video`` against ``req.galleries`` (audited once)."""
    purpose, case_ref = require_purpose(req.purpose, req.case_ref)
    engine, plan = prepare_search(ws, actor, req.galleries, req.k, req.fpir, purpose)
    started = time.perf_counter()
    searcher = TrackSearcher(ws, engine, plan)
    scanner = VideoScanner(engine, req.scan)
    outcomes: list[TrackOutcome] = []
    with open_video(
        req.video, req.limits or limits_from(ws.settings), sample_fps=req.scan.sample_fps
    ) as reader:
        info = reader.info
        for frame, tracks in scanner.scan(reader):
            if cancel is not None and cancel.is_set():
                raise Cancelled("video search cancelled; nothing was recorded")
            for track in tracks:
                outcomes += searcher.decide(track)
            if progress is not None:
                progress(_progress(frame, info, reader.frames_sampled, searcher, outcomes))
        for track in scanner.finish():
            outcomes += searcher.decide(track)
        decoded, sampled = reader.frames_decoded, reader.frames_sampled
    outcomes.sort(key=lambda t: (t.start_s, t.track_id))
    video_search_id = uuid.uuid4().hex
    record = _audit_record(
        actor, purpose, case_ref, engine.card.id, plan, req, info, outcomes, scanner
    )
    record = _with_id(record, video_search_id)
    lead_tracks = [t for t in outcomes if t.has_leads]
    seq, reviews = ws.reviews.record_video_search(
        actor,
        record,
        [leads_of(t.candidates) for t in lead_tracks],
        terms=None if plan.sharing is None else plan.sharing.terms,
    )
    by_track = {t.track_id: r.search_id for t, r in zip(lead_tracks, reviews, strict=True)}
    kept = req.keep_faces and bool(lead_tracks)
    if kept:
        for t, r in zip(lead_tracks, reviews, strict=True):
            kept = keep_track_faces(ws, r.search_id, t) and kept
    final = tuple(
        _with_search_id(t, by_track.get(t.track_id)) if t.has_leads else t for t in outcomes
    )
    return VideoSearchResult(
        video_search_id=video_search_id,
        audit_seq=seq,
        video=info,
        galleries=tuple(g.name for g in plan.galleries),
        model_id=engine.card.id,
        target_fpir=plan.point.target_fpir,
        threshold=plan.point.threshold,
        templates_searched=plan.point.templates,
        frames_decoded=decoded,
        frames_sampled=sampled,
        faces_detected=scanner.counts.faces,
        shot_cuts=scanner.counts.cuts,
        tracks_searched=searcher.searched,
        tracks_discarded=searcher.discarded,
        tracks_too_short=scanner.counts.too_short,
        tracks=final,
        processing_seconds=time.perf_counter() - started,
        faces_kept=kept,
    )


def _progress(
    frame: Frame,
    info: VideoInfo,
    sampled: int,
    searcher: TrackSearcher,
    outcomes: Sequence[TrackOutcome],
) -> VideoProgress:
    return VideoProgress(
        seconds_read=frame.time_s,
        duration_s=info.duration_s,
        frames_sampled=sampled,
        tracks_searched=searcher.searched,
        tracks_with_leads=sum(1 for t in outcomes if t.has_leads),
    )


def _with_search_id(track: TrackOutcome, search_id: str | None) -> TrackOutcome:
    return replace(track, search_id=search_id, faces=())


def _with_id(record: AuditRecord, video_search_id: str) -> AuditRecord:
    return replace(record, details={**record.details, "video_search_id": video_search_id})


def track_json(track: TrackOutcome) -> dict[str, Any]:
    """What the audit log keeps of a lead track: its span and counts, no face data."""
    return {
        "track_id": track.track_id,
        "start_s": round(track.start_s, 3),
        "end_s": round(track.end_s, 3),
        "first_frame": track.first_frame,
        "last_frame": track.last_frame,
        "faces_seen": track.faces_seen,
        "faces_used": track.faces_used,
        "leads": len(track.candidates),
    }


def _audit_record(
    actor: User,
    purpose: str,
    case_ref: str,
    model_id: str,
    plan: SearchPlan,
    req: VideoSearchRequest,
    info: VideoInfo,
    outcomes: Sequence[TrackOutcome],
    scanner: VideoScanner,
) -> AuditRecord:
    leads = tuple(lead for t in outcomes if t.has_leads for lead in leads_of(t.candidates))
    searched = len(outcomes)
    details: dict[str, Any] = {
        "video": video_json(info),
        "sample_fps": req.scan.sample_fps,
        "detect_max_side": req.scan.detect_max_side,
        "faces_per_track": req.scan.faces_per_track,
        "min_hits": req.scan.min_hits,
        "frames_sampled": scanner.counts.frames,
        "faces_detected": scanner.counts.faces,
        "shot_cuts": scanner.counts.cuts,
        "tracks_searched": searched,
        "tracks_with_leads": sum(1 for t in outcomes if t.has_leads),
        "tracks_discarded": sum(1 for t in outcomes if not t.has_leads),
        "tracks_too_short": scanner.counts.too_short,
        "expected_false_alerts": round(searched * plan.point.target_fpir, 6),
        "lead_tracks": [track_json(t) for t in outcomes if t.has_leads],
    }
    return plan.audit_record(
        AuditOp.VIDEO_SEARCH, actor, purpose, case_ref, model_id, info.sha256, leads, details
    )


def video_json(info: VideoInfo) -> dict[str, Any]:
    return {
        "sha256": info.sha256,
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "fps": round(info.fps, 4),
        "duration_s": None if info.duration_s is None else round(info.duration_s, 3),
        "frames": info.frames,
    }


def face_strip(faces: Sequence[TrackFace]) -> tuple[bytes, list[dict[str, Any]]]:
    """A JPEG of a track's best faces side by side, and each tile's record (box in the strip,
    time, frame and quality) for the review page."""
    from PIL import Image

    tiles = [f.thumbnail for f in faces]
    height = max(t.shape[0] for t in tiles)
    width = sum(t.shape[1] for t in tiles) + 4 * (len(tiles) - 1)
    strip = np.full((height, width, 3), 255, dtype=np.uint8)
    records: list[dict[str, Any]] = []
    x = 0
    for face, tile in zip(faces, tiles, strict=True):
        h, w = tile.shape[:2]
        strip[:h, x : x + w] = tile
        records.append(
            {
                "box": {"left": x, "top": 0, "right": x + w, "bottom": h},
                "time_s": round(face.time_s, 3),
                "frame": face.frame,
                "confidence": face.detection.confidence,
                "detector": face.detection.detector,
                "quality": quality_to_dict(face.quality),
            }
        )
        x += w + 4
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="JPEG", quality=90)
    return buf.getvalue(), records


def keep_track_faces(ws: Workspace, search_id: str, track: TrackOutcome) -> bool:
    """Keep a lead track's best faces as its review record's probe; False when they cannot be
    kept (the leads stand; reviewers then see no faces)."""
    if not track.faces:
        return False
    data, records = face_strip(track.faces)
    try:
        ws.images.put_probe(
            search_id, hashlib.sha256(data).hexdigest(), data, "image/jpeg", records
        )
    except FaceLedgerError:
        return False
    return True
