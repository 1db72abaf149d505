"""Which of these unknown faces are the same person? Clusters of a folder's faces, audited once.

Every face of every image is embedded; faces passing the quality gates seed clusters, the
others may only join one; two faces of one image are never put together; the link threshold
comes from a target FMR of the model card's calibration; faces whose best cluster does not
beat the runner-up by a margin are listed for review (docs/clustering.md).

Authorised as :attr:`Operation.DETECT` (it reads only the images given and no gallery, as
``detect`` does), with a purpose and case reference required. One audit entry records who,
why, the images' sha256s, the counts and the threshold with its FMR: no template, no name, no
cluster membership. Nothing else is stored, unless the request asks to ``keep`` the result as
a cluster set for review (:mod:`.cluster_review`): then the set and that one entry, which
names the set, are written together.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from faceledger.access import Operation, User, authorize
from faceledger.access.purpose import require_purpose
from faceledger.audit import AuditOp, AuditRecord
from faceledger.cluster import (
    DEFAULT_METHOD,
    METHODS,
    Source,
    cluster_faces,
    margin_at_fmr,
    threshold_at_fmr,
)
from faceledger.errors import FaceLedgerError, InvalidArgument
from faceledger.gallery.workspace import Workspace
from faceledger.match.verify import check_fmr
from faceledger.review.cluster_sets import KeptFace
from faceledger.types import Box
from faceledger.video import (
    ScanSettings,
    TrackFaces,
    VideoLimits,
    VideoScanner,
    fuse,
    limits_from,
    open_video,
)
from faceledger.video.kind import is_video_file

DEFAULT_CLUSTER_FMR = 1e-4
THUMB_PX = 112


@dataclass(frozen=True)
class ClusterImages:
    images: tuple[Path, ...]
    purpose: str | None = None
    case_ref: str | None = None
    fmr: float = DEFAULT_CLUSTER_FMR
    method: str = DEFAULT_METHOD
    thumbnails: bool = False
    """Keep a small JPEG crop of each face (for a contact sheet)."""
    keep: bool = False
    """Keep the result as a cluster set for review (faces, templates and crops, encrypted
    with the template key when one is set) until ``Settings.cluster_set_retention_days``."""
    scan: ScanSettings = field(default_factory=ScanSettings)
    """How videos among ``images`` are scanned into tracks (one clustered face per track)."""
    video_limits: VideoLimits | None = None
    """What a video may be (None: the workspace settings')."""


@dataclass(frozen=True)
class TrackSpan:
    """Where a clustered face that is a video track was seen."""

    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    faces_seen: int
    faces_used: int
    """Best faces fused into the track's template."""
    best_s: float
    """When its best face (the one whose box and crop are shown) was seen."""


@dataclass(frozen=True)
class ClusteredFace:
    image: str
    image_sha256: str
    face_index: int
    box: Box
    quality: float
    seedable: bool
    """Passed the quality gates: may start a cluster."""
    cluster: int
    """-1: joined no cluster (not seedable, no cluster near enough)."""
    ambiguous: bool
    runner_up: int
    own_score: float | None
    runner_up_score: float | None
    thumbnail: bytes | None = None
    track: TrackSpan | None = None
    """A video track (``image`` is the video, ``face_index`` the track's number), else None."""


@dataclass(frozen=True)
class ImagesClustered:
    faces: tuple[ClusteredFace, ...]
    clusters: tuple[tuple[int, ...], ...]
    """Face indices of each cluster, largest first; cluster ``k`` is ``clusters[k]``."""
    ambiguous: tuple[int, ...]
    unassigned: tuple[int, ...]
    failed: tuple[tuple[str, str], ...]
    """(file, error code) of images and videos that could not be read."""
    images: int
    """Inputs that are images (the rest are videos)."""
    threshold: float
    margin: float
    target_fmr: float
    method: str
    model_id: str
    audit_seq: int
    set_id: str | None = None
    """The kept cluster set (``ClusterImages.keep``), else None."""
    videos: int = 0


def _jpeg(pixels: np.ndarray) -> bytes:
    img = Image.fromarray(pixels).convert("RGB")
    img.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _thumb(pixels: np.ndarray, box: Box) -> bytes:
    h, w = pixels.shape[:2]
    pad = 0.25 * max(box.right - box.left, box.bottom - box.top)
    left, top = max(int(box.left - pad), 0), max(int(box.top - pad), 0)
    right, bottom = min(int(box.right + pad), w), min(int(box.bottom + pad), h)
    return _jpeg(pixels[top:bottom, left:right])


@dataclass(frozen=True)
class _Face:
    image: str
    sha256: str
    face_index: int
    box: Box
    quality: float
    seedable: bool
    thumb: bytes | None
    source: Source
    """The image, or the sampled frames a track spans: faces sharing one are two people."""
    track: TrackSpan | None = None


@dataclass
class _Found:
    vectors: list[np.ndarray] = field(default_factory=list)
    """What is clustered: a face's template, or a track's mean template (not normalised)."""
    templates: list[np.ndarray] = field(default_factory=list)
    """What a kept set keeps (and an enrolment enrols): unit templates."""
    faces: list[_Face] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    video_hashes: list[str] = field(default_factory=list)
    videos: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _embed_all(ws: Workspace, req: ClusterImages) -> _Found:
    found = _Found()
    for path in req.images:
        try:
            if is_video_file(path):
                found.videos += 1
                _embed_video(ws, req, path, found)
            else:
                _embed_image(ws, req, path, found)
        except FaceLedgerError as exc:
            found.failed.append((str(path), exc.code))
    return found


def _embed_image(ws: Workspace, req: ClusterImages, path: Path, found: _Found) -> None:
    engine = ws.engine
    img = engine.load(path)
    results = engine.embed_all(img)
    found.hashes.append(img.sha256)
    for r in results:
        if r.template is None:
            continue
        found.vectors.append(r.template.vector.astype(np.float32))
        found.templates.append(found.vectors[-1])
        wanted = req.thumbnails or req.keep
        found.faces.append(
            _Face(
                image=str(path),
                sha256=img.sha256,
                face_index=r.face_index,
                box=r.detection.box,
                quality=float(r.quality.score),
                seedable=bool(r.quality.passes),
                thumb=_thumb(img.pixels, r.detection.box) if wanted else None,
                source=str(path),
            )
        )


def _embed_video(ws: Workspace, req: ClusterImages, path: Path, found: _Found) -> None:
    """Every track of the video, fused from its best faces: one face each (a tracker's
    merge of two people is split first). A track is clustered by its faces' mean template,
    so that a link between two tracks is the mean of their faces' calibrated scores. A
    track's source is the sampled frames it spans: two tracks on screen at once are two
    people; one person's tracks apart may join."""
    engine = ws.engine
    scanner = VideoScanner(engine, req.scan)
    ended: list[TrackFaces] = []
    limits = req.video_limits or limits_from(ws.settings)
    with open_video(path, limits, sample_fps=req.scan.sample_fps) as reader:
        info = reader.info
        for _frame, tracks in scanner.scan(reader):
            ended += tracks
        ended += scanner.finish()
    sha = info.sha256 or ""
    found.video_hashes.append(sha)
    wanted = req.thumbnails or req.keep
    number = 0
    for track in sorted(ended, key=lambda t: (t.start_s, t.track_id)):
        slots = range(_slot(track.start_s, req.scan), _slot(track.end_s, req.scan) + 1)
        source = frozenset(f"{sha}#{k}" for k in slots)
        for part in fuse(engine, track):
            best = part.faces[0]
            found.vectors.append(part.mean.astype(np.float32))
            found.templates.append(part.template.vector.astype(np.float32))
            found.faces.append(
                _Face(
                    image=str(path),
                    sha256=sha,
                    face_index=number,
                    box=best.detection.box,
                    quality=float(best.quality.score),
                    seedable=bool(best.quality.passes),
                    thumb=_jpeg(best.thumbnail) if wanted else None,
                    source=source,
                    track=TrackSpan(
                        start_s=round(track.start_s, 3),
                        end_s=round(track.end_s, 3),
                        first_frame=track.first_frame,
                        last_frame=track.last_frame,
                        faces_seen=track.faces_seen,
                        faces_used=len(part.faces),
                        best_s=round(best.time_s, 3),
                    ),
                )
            )
            number += 1


def _slot(time_s: float, scan: ScanSettings) -> int:
    """The sampling slot of a time: tracks of one video sharing a slot were seen together."""
    return round(time_s * scan.sample_fps)


def _opt(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def cluster_images(ws: Workspace, actor: User, req: ClusterImages) -> ImagesClustered:
    """Cluster every face of ``req.images`` into identities at ``req.fmr``. Audited once."""
    authorize(actor, Operation.DETECT)
    purpose, case_ref = require_purpose(req.purpose, req.case_ref)
    check_fmr(req.fmr)
    if req.method not in METHODS:
        raise InvalidArgument(f"clustering method must be one of {', '.join(METHODS)}")
    if not req.images:
        raise InvalidArgument("no images to cluster")
    card = ws.engine.card
    threshold = threshold_at_fmr(card, req.fmr)
    margin = margin_at_fmr(card, req.fmr)
    found = _embed_all(ws, req)
    dim = card.dimension
    x = np.stack(found.vectors) if found.vectors else np.zeros((0, dim), dtype=np.float32)
    result = cluster_faces(
        x,
        [f.source for f in found.faces],
        threshold=threshold,
        margin=margin,
        seedable=[f.seedable for f in found.faces],
        method=req.method,
    )
    order = result.clusters()
    rank = {members[0]: k for k, members in enumerate(order)}
    new_id = {int(result.labels[m[0]]): rank[m[0]] for m in order}
    flagged = set(result.ambiguous)
    faces = tuple(
        ClusteredFace(
            image=f.image,
            image_sha256=f.sha256,
            face_index=f.face_index,
            box=f.box,
            quality=round(f.quality, 1),
            seedable=f.seedable,
            cluster=new_id.get(int(result.labels[i]), -1),
            ambiguous=i in flagged,
            runner_up=new_id.get(int(result.runner_up[i]), -1),
            own_score=_opt(result.own_score[i]),
            runner_up_score=_opt(result.runner_up_score[i]),
            thumbnail=f.thumb,
            track=f.track,
        )
        for i, f in enumerate(found.faces)
    )
    record = AuditRecord(
        operation=AuditOp.CLUSTER,
        actor=actor.id,
        purpose=purpose,
        case_ref=case_ref,
        model_id=card.id,
        threshold=round(threshold, 6),
        target_fmr=req.fmr,
        details={
            "image_sha256s": sorted(set(found.hashes)),
            "video_sha256s": sorted(set(found.video_hashes)),
            "images": len(req.images) - found.videos,
            "videos": found.videos,
            "tracks": sum(f.track is not None for f in faces),
            "unreadable_images": len(found.failed),
            "faces": len(faces),
            "clusters": len(order),
            "ambiguous": len(result.ambiguous),
            "unassigned": len(result.unassigned),
            "method": req.method,
            "margin": round(margin, 6),
        },
    )
    set_id = None
    if req.keep:
        set_id, seq = _keep(ws, actor, record, faces, found.templates)
    else:
        seq = ws.audit.append(record).seq
    return ImagesClustered(
        faces=faces,
        clusters=tuple(tuple(m) for m in order),
        ambiguous=result.ambiguous,
        unassigned=result.unassigned,
        failed=tuple(found.failed),
        images=len(req.images) - found.videos,
        threshold=threshold,
        margin=margin,
        target_fmr=req.fmr,
        method=req.method,
        model_id=card.id,
        audit_seq=seq,
        set_id=set_id,
        videos=found.videos,
    )


def _keep(
    ws: Workspace,
    actor: User,
    record: AuditRecord,
    faces: tuple[ClusteredFace, ...],
    vectors: list[np.ndarray],
) -> tuple[str, int]:
    """Keep the result as a cluster set; the clustering's one entry names it."""
    kept = [
        KeptFace(
            image_sha256=f.image_sha256,
            face_index=f.face_index,
            box=f.box,
            quality=f.quality,
            seedable=f.seedable,
            vector=v,
            crop=f.thumbnail,
            cluster=f.cluster,
            ambiguous=f.ambiguous,
            span=None if f.track is None else (f.track.start_s, f.track.end_s),
        )
        for f, v in zip(faces, vectors, strict=True)
    ]
    days = timedelta(days=ws.settings.cluster_set_retention_days)
    return ws.cluster_sets.keep(actor, record, kept, days)


def clusters_json(res: ImagesClustered) -> dict[str, object]:
    """The result as JSON: faces with their cluster, no template, no thumbnail."""
    return {
        "model_id": res.model_id,
        "method": res.method,
        "target_fmr": res.target_fmr,
        "threshold": round(res.threshold, 6),
        "ambiguity_margin": round(res.margin, 6),
        "images": res.images,
        "videos": res.videos,
        "unreadable": [{"image": p, "error": e} for p, e in res.failed],
        "faces": [
            {
                "image": f.image,
                "image_sha256": f.image_sha256,
                "face_index": f.face_index,
                "box": [f.box.left, f.box.top, f.box.right, f.box.bottom],
                "quality": f.quality,
                "seedable": f.seedable,
                "cluster": f.cluster,
                "ambiguous": f.ambiguous,
                "runner_up": f.runner_up,
                "own_score": f.own_score,
                "runner_up_score": f.runner_up_score,
                "track": None if f.track is None else asdict(f.track),
            }
            for f in res.faces
        ],
        "clusters": [list(c) for c in res.clusters],
        "ambiguous": list(res.ambiguous),
        "unassigned": list(res.unassigned),
        "audit_seq": res.audit_seq,
        "cluster_set_id": res.set_id,
    }


def _card(f: ClusteredFace, i: int) -> str:
    img = ""
    if f.thumbnail is not None:
        data = base64.b64encode(f.thumbnail).decode("ascii")
        img = f'<img alt="face {i}" src="data:image/jpeg;base64,{data}">'
    note = " ambiguous" if f.ambiguous else ""
    alt = f" (runner-up: cluster {f.runner_up})" if f.ambiguous and f.runner_up >= 0 else ""
    where = (
        f"face {f.face_index}"
        if f.track is None
        else f"track {f.face_index}, {f.track.start_s:.1f}–{f.track.end_s:.1f} s"
    )
    return (
        f'<figure class="face{note}">{img}<figcaption>#{i} {html.escape(Path(f.image).name)}'
        f" {where}, q{f.quality:.0f}{html.escape(note + alt)}</figcaption></figure>"
    )


def render_clusters_html(res: ImagesClustered) -> str:
    """A self-contained contact sheet: one row of face crops per cluster, then the rest."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Face clusters</title><style>"
        "body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:4px;"
        "width:120px;font-size:11px}figure.ambiguous img{outline:3px solid #c60}"
        "section{border-top:1px solid #ccc;padding:4px 0}</style></head><body>",
        f"<h1>{len(res.clusters)} clusters of {len(res.faces)} faces from {res.images} images"
        f"{f' and {res.videos} videos' if res.videos else ''}</h1>",
        f"<p>{html.escape(res.method)} at cosine similarity {res.threshold:.4f} (target FMR "
        f"{res.target_fmr:g}, model {html.escape(res.model_id)}); ambiguity margin "
        f"{res.margin:.4f}; {len(res.ambiguous)} ambiguous, {len(res.unassigned)} unassigned. "
        "Clusters are leads for a human to check, not identifications.</p>",
    ]
    for k, members in enumerate(res.clusters):
        cards = "".join(_card(res.faces[i], i) for i in members)
        parts.append(f"<section><h2>cluster {k} ({len(members)})</h2>{cards}</section>")
    if res.unassigned:
        cards = "".join(_card(res.faces[i], i) for i in res.unassigned)
        parts.append(f"<section><h2>unassigned (low quality)</h2>{cards}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
