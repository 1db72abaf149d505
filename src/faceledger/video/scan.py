"""Sampled frames → faces → tracks → each track's best faces, embedded and fused.

The scanner never embeds a face the moment it is seen: it detects (on a working copy no larger
than ``detect_max_side``), assesses quality, and links faces into tracks with box motion and a
cheap appearance descriptor (:mod:`.track`, :mod:`.appearance`). Each live track holds only its
``faces_per_track`` best faces by quality (aligned chips and small thumbnails). When a track
ends (unseen for a while, a shot cut, the end of the video) those faces are embedded in one
batch and fused into one template; if they do not all look like one person (two people merged
by the tracker) they are split into groups first. What a caller does with the result (search,
then keep or discard) is the use case's business; the scanner forgets a track once handed over.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from faceledger.align import align_face
from faceledger.config import Settings
from faceledger.detect import Detector, make_detector
from faceledger.errors import InvalidArgument
from faceledger.match.verify import require_calibration
from faceledger.pipeline import Engine
from faceledger.quality import assess_quality
from faceledger.types import AlignedFace, Box, Detection, Pixels, QualityReport, Template
from faceledger.video.appearance import descriptor
from faceledger.video.cuts import CutDetector
from faceledger.video.source import Frame
from faceledger.video.track import Ended, Tracker, TrackerConfig, TrackState

THUMB_PX = 160
"""Longest side of a kept face thumbnail (what a reviewer sees of a lead track)."""

SPLIT_FMR = 1e-2
"""Faces of one track scoring below the model's threshold at this false-match rate against the
track's best face are treated as another person (a tracker merge) and searched separately."""


@dataclass(frozen=True)
class ScanSettings:
    """How a video is scanned; the defaults are what ``faceledger video search`` uses."""

    sample_fps: float = 5.0
    """Frames examined per second of video."""
    detect_max_side: int = 640
    """Detection runs on a copy no larger than this (faces smaller than ``min_face_px`` at
    that scale are not looked for)."""
    faces_per_track: int = 5
    """Best faces (by quality) embedded and fused per track."""
    min_hits: int = 2
    """Tracks seen on fewer sampled frames are not searched (counted as too short)."""
    detect_threads: int = 0
    """Frames detected at once (0: one per core, at most 4). dlib releases the GIL while it
    detects, so threads scale like processes here without copying frames between them."""
    early_hits: int | None = None
    """Live: hand a track over for an early search once seen this often (None: only at its end)."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if not 0.1 <= self.sample_fps <= 120:
            raise InvalidArgument("sample_fps must be between 0.1 and 120")
        if not 80 <= self.detect_max_side <= 4096:
            raise InvalidArgument("detect_max_side must be between 80 and 4096")
        if not 1 <= self.faces_per_track <= 20:
            raise InvalidArgument("faces_per_track must be between 1 and 20")
        if self.min_hits < 1:
            raise InvalidArgument("min_hits must be at least 1")
        if not 0 <= self.detect_threads <= 64:
            raise InvalidArgument("detect_threads must be between 0 and 64")

    @property
    def threads(self) -> int:
        return self.detect_threads or max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class TrackFace:
    """One of a track's best faces: where, when, how good, its chip and a small thumbnail."""

    frame: int
    time_s: float
    detection: Detection
    quality: QualityReport
    chip: AlignedFace = field(repr=False)
    thumbnail: Pixels = field(repr=False)


@dataclass(frozen=True)
class TrackFaces:
    """A finished (or, live, an interim) track: its span and its best faces, best first."""

    track_id: int
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    faces_seen: int
    reason: str
    """Why it was handed over: ``gap``, ``cut``, ``end`` or ``early`` (live, still running)."""
    best: tuple[TrackFace, ...]
    keyframes: tuple[tuple[float, Box], ...] = field(repr=False)
    """Every box of the track with its time (for drawing a lead track)."""


@dataclass(frozen=True)
class TrackTemplate:
    """A group of a track's faces fused into one template (one search)."""

    track: TrackFaces
    faces: tuple[TrackFace, ...]
    template: Template
    mean: np.ndarray = field(repr=False)
    """The faces' templates averaged, not normalised: its dot product with another such
    mean is the mean similarity of their faces' pairs, a score on the scale the model card
    calibrates (the normalised ``template``'s cosine is higher: averaging removes noise that
    kept two people apart)."""


@dataclass
class _Live:
    faces_seen: int = 0
    best: list[TrackFace] = field(default_factory=list)
    keyframes: list[tuple[float, Box]] = field(default_factory=list)
    early_sent: bool = False


@dataclass
class ScanCounts:
    frames: int = 0
    faces: int = 0
    cuts: int = 0
    too_short: int = 0


class VideoScanner:
    """Feed sampled frames in order; get finished tracks with their best faces back."""

    def __init__(
        self,
        engine: Engine,
        config: ScanSettings | None = None,
        *,
        detector: Detector | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or ScanSettings()
        self._detector = detector or video_detector(engine.settings, self.config)
        self._tracker = Tracker(self.config.tracker)
        self._cuts = CutDetector()
        self._live: dict[int, _Live] = {}
        self.counts = ScanCounts()

    def scan(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, list[TrackFaces]]]:
        """Each frame with the tracks handed over at it, in order; detection runs ahead on
        ``config.threads`` threads (at most twice that many frames in flight), everything
        else in order on the caller's thread. After the last frame, :meth:`finish`."""
        threads = self.config.threads
        with ThreadPoolExecutor(threads, thread_name_prefix="faceledger-detect") as pool:
            pending: deque[tuple[Frame, Future[list[Detection]]]] = deque()
            try:
                for frame in frames:
                    pending.append((frame, pool.submit(self._detect, frame.pixels)))
                    if len(pending) >= 2 * threads:
                        done, found = pending.popleft()
                        yield done, self.feed_detected(done, found.result())
                while pending:
                    done, found = pending.popleft()
                    yield done, self.feed_detected(done, found.result())
            finally:
                for _, future in pending:
                    future.cancel()

    def _detect(self, pixels: Pixels) -> list[Detection]:
        return self._detector.detect(pixels, finer=False)

    def feed_detected(self, frame: Frame, detections: list[Detection]) -> list[TrackFaces]:
        """Process one sampled frame whose faces were detected already."""
        out: list[TrackFaces] = []
        self.counts.frames += 1
        if self._cuts.is_cut(frame.pixels):
            self.counts.cuts += 1
            out += self._hand_over(self._tracker.cut())
        self.counts.faces += len(detections)
        descriptors = [descriptor(frame.pixels, d.box) for d in detections]
        ids, ended = self._tracker.update(
            frame.index, frame.time_s, [d.box for d in detections], descriptors
        )
        for track_id, det in zip(ids, detections, strict=True):
            self._observe(track_id, frame, det)
        out += self._hand_over(ended)
        out += self._early(frame)
        return out

    def finish(self) -> list[TrackFaces]:
        """End of the video: hand over every live track."""
        return self._hand_over(self._tracker.finish())

    # -- internals ---------------------------------------------------------------------
    def _observe(self, track_id: int, frame: Frame, det: Detection) -> None:
        live = self._live.setdefault(track_id, _Live())
        live.faces_seen += 1
        live.keyframes.append((frame.time_s, det.box))
        quality = assess_quality(frame.pixels, det, self.engine.settings.gates)
        keep = self.config.faces_per_track
        if len(live.best) >= keep and quality.score <= live.best[-1].quality.score:
            return
        face = TrackFace(
            frame=frame.index,
            time_s=frame.time_s,
            detection=det,
            quality=quality,
            chip=align_face(frame.pixels, det, self.engine.card.align),
            thumbnail=thumbnail(frame.pixels, det.box),
        )
        live.best.append(face)
        live.best.sort(key=lambda f: f.quality.score, reverse=True)
        del live.best[keep:]

    def _early(self, frame: Frame) -> list[TrackFaces]:
        hits = self.config.early_hits
        if hits is None:
            return []
        out = []
        for track_id, live in self._live.items():
            if not live.early_sent and live.faces_seen >= hits:
                live.early_sent = True
                out.append(_handed(track_id, live, self._tracker.live[track_id], "early"))
        return out

    def _hand_over(self, ended: Sequence[Ended]) -> list[TrackFaces]:
        out = []
        for e in ended:
            live = self._live.pop(e.track_id, None)
            if live is None:
                continue
            if live.faces_seen < self.config.min_hits:
                self.counts.too_short += 1
                continue
            out.append(_handed(e.track_id, live, e, e.reason))
        return out


def _handed(track_id: int, live: _Live, span: Ended | TrackState, reason: str) -> TrackFaces:
    """What the scanner hands over of a track: its span (from the tracker) and best faces."""
    return TrackFaces(
        track_id=track_id,
        start_s=span.first_time_s,
        end_s=span.last_time_s,
        first_frame=span.first_frame,
        last_frame=span.last_frame,
        faces_seen=live.faces_seen,
        reason=reason,
        best=tuple(live.best),
        keyframes=tuple(live.keyframes),
    )


def video_detector(settings: Settings, config: ScanSettings) -> Detector:
    """HOG only (the CNN fallback costs seconds on every frame without a face), on a working
    copy no larger than ``config.detect_max_side``."""
    return make_detector(
        dataclasses.replace(settings, detector="hog", detect_max_side=config.detect_max_side)
    )


def thumbnail(pixels: Pixels, box: Box, max_px: int = THUMB_PX) -> Pixels:
    """The face box widened by half its size each way, no larger than ``max_px``."""
    from PIL import Image

    h, w = pixels.shape[:2]
    pad_x, pad_y = box.width * 0.5, box.height * 0.5
    left, top = max(0, int(box.left - pad_x)), max(0, int(box.top - pad_y))
    right, bottom = min(w, int(box.right + pad_x)), min(h, int(box.bottom + pad_y))
    crop = Image.fromarray(pixels[top:bottom, left:right])
    crop.thumbnail((max_px, max_px))
    return np.ascontiguousarray(np.asarray(crop, dtype=np.uint8))


def fuse(engine: Engine, track: TrackFaces) -> list[TrackTemplate]:
    """Embed a track's best faces in one batch and fuse them: one template per group of faces
    that look like one person (normally one group; more when the tracker merged people)."""
    if not track.best:
        return []
    templates = engine.embed_faces([f.chip for f in track.best])
    split_at = require_calibration(engine.card).threshold_for(SPLIT_FMR)
    return [
        _fused(track, [track.best[i] for i in group], [templates[i] for i in group])
        for group in _groups(templates, split_at)
    ]


def _groups(templates: Sequence[Template], threshold: float) -> list[list[int]]:
    """Greedy grouping in quality order: each face joins the first group whose leading (best)
    face it matches at ``threshold``, else starts a group."""
    groups: list[list[int]] = []
    for i, t in enumerate(templates):
        for g in groups:
            if t.similarity(templates[g[0]]) >= threshold:
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def _fused(
    track: TrackFaces, faces: Sequence[TrackFace], templates: Sequence[Template]
) -> TrackTemplate:
    mean = np.mean([t.vector for t in templates], axis=0).astype(np.float32)
    vector = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return TrackTemplate(track, tuple(faces), Template(templates[0].model_id, vector), mean)
