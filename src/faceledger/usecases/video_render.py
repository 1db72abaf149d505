"""A video search's result as JSON (CLI ``--json`` and the service, one shape) and as a
self-contained HTML report (timeline of tracks, each lead track's best face and candidates)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict
from typing import Any

from faceledger.match.identify import Candidate
from faceledger.serialize import fmr_json
from faceledger.types import Pixels
from faceledger.usecases.video import TrackOutcome, VideoSearchResult, video_json

FALSE_ALERT_NOTE = (
    "Expected false alerts = tracks searched x target FPIR: the number of lead tracks chance "
    "alone should produce when nobody in the video is enrolled. Leads are for trained "
    "reviewers, not identifications."
)


def candidate_json(c: Candidate) -> dict[str, Any]:
    return {
        "rank": c.rank,
        "gallery": c.gallery,
        "subject": c.external_id,
        "display_name": c.display_name,
        "score": round(c.score, 6),
        "similarity": None if c.similarity is None else round(c.similarity, 6),
        "fpir": c.fpir,
        "estimated_fmr": fmr_json(c.fmr),
        "template_id": c.template_id,
    }


def track_out_json(t: TrackOutcome, *, thumbnails: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "track_id": t.track_id,
        "start_s": round(t.start_s, 3),
        "end_s": round(t.end_s, 3),
        "first_frame": t.first_frame,
        "last_frame": t.last_frame,
        "faces_seen": t.faces_seen,
        "faces_used": t.faces_used,
        "outcome": t.outcome,
        "candidates": [candidate_json(c) for c in t.candidates],
    }
    if t.has_leads:
        out["search_id"] = t.search_id
        out["best_face"] = {
            "time_s": None if t.best_time_s is None else round(t.best_time_s, 3),
            "box": None
            if t.best_box is None
            else {k: round(v, 1) for k, v in asdict(t.best_box).items()},
            "quality": None if t.best_quality is None else round(t.best_quality, 1),
        }
        if thumbnails and t.thumbnail is not None:
            out["best_face"]["thumbnail_jpeg_base64"] = base64.b64encode(jpeg(t.thumbnail)).decode()
    return out


def result_json(res: VideoSearchResult, *, thumbnails: bool = False) -> dict[str, Any]:
    return {
        "video_search_id": res.video_search_id,
        "audit_seq": res.audit_seq,
        "video": {
            **video_json(res.video),
            "frames_decoded": res.frames_decoded,
            "frames_sampled": res.frames_sampled,
        },
        "galleries": list(res.galleries),
        "model_id": res.model_id,
        "target_fpir": res.target_fpir,
        "threshold": round(res.threshold, 6),
        "templates_searched": res.templates_searched,
        "faces_detected": res.faces_detected,
        "shot_cuts": res.shot_cuts,
        "tracks_searched": res.tracks_searched,
        "tracks_with_leads": len(res.lead_tracks),
        "tracks_discarded": res.tracks_discarded,
        "tracks_too_short": res.tracks_too_short,
        "expected_false_alerts": round(res.expected_false_alerts, 6),
        "expected_false_alerts_note": FALSE_ALERT_NOTE,
        "faces_kept_for_review": res.faces_kept,
        "tracks": [track_out_json(t, thumbnails=thumbnails) for t in res.tracks],
        "processing": {
            "seconds": round(res.processing_seconds, 3),
            "realtime_factor": None
            if res.realtime_factor is None
            else round(res.realtime_factor, 3),
        },
    }


def jpeg(pixels: Pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def html_report(res: VideoSearchResult, title: str = "Video search") -> str:
    """One HTML page, no external resources: the numbers, a timeline, the lead tracks."""
    duration = res.video.duration_s or max((t.end_s for t in res.tracks), default=1.0) or 1.0
    width = 900
    rows = []
    for i, t in enumerate(res.tracks):
        x = 10 + (width - 20) * t.start_s / duration
        w = max(3.0, (width - 20) * (t.end_s - t.start_s) / duration)
        colour = "#c0392b" if t.has_leads else "#aaa"
        label = f"track {t.track_id}: {t.start_s:.1f}-{t.end_s:.1f} s, {t.outcome}"
        rows.append(
            f'<rect x="{x:.1f}" y="{10 + i * 16}" width="{w:.1f}" height="12" fill="{colour}">'
            f"<title>{html.escape(label)}</title></rect>"
        )
    svg = (
        f'<svg width="{width}" height="{20 + 16 * len(res.tracks)}" role="img" '
        f'aria-label="tracks on the video timeline">{"".join(rows)}</svg>'
    )
    leads = []
    for t in res.lead_tracks:
        img = ""
        if t.thumbnail is not None:
            data = base64.b64encode(jpeg(t.thumbnail)).decode()
            img = f'<img alt="best face of track {t.track_id}" src="data:image/jpeg;base64,{data}">'
        cands = "".join(
            f"<tr><td>{c.rank}</td><td>{html.escape(c.gallery)}</td>"
            f"<td>{html.escape(c.external_id)}</td><td>{c.score:.4f}</td>"
            f"<td>{c.fmr.value:.1e}</td></tr>"
            for c in t.candidates
        )
        leads.append(
            f'<section class="lead"><h3>Track {t.track_id}: {t.start_s:.2f}-{t.end_s:.2f} s</h3>'
            f"{img}<table><tr><th>rank</th><th>gallery</th><th>subject</th><th>score</th>"
            f"<th>est. FMR</th></tr>{cands}</table>"
            f"<p>review record {html.escape(t.search_id or '-')}</p></section>"
        )
    info = res.video
    facts = (
        f"<p>Video sha256 {html.escape(info.sha256 or '-')}, {info.width}x{info.height}, "
        f"{info.fps:.2f} fps, {duration:.1f} s; {res.frames_sampled} of {res.frames_decoded} "
        f"frames examined. Galleries {html.escape(', '.join(res.galleries))} "
        f"({res.templates_searched} templates), target FPIR {res.target_fpir:g}.</p>"
        f"<p><b>{res.tracks_searched} tracks searched, {len(res.lead_tracks)} with leads; "
        f"expected false alerts {res.expected_false_alerts:.2f}.</b> "
        f"{html.escape(FALSE_ALERT_NOTE)}</p>"
        f"<p>{res.tracks_discarded} tracks without a candidate were discarded (faces and "
        f"templates not kept); {res.tracks_too_short} too short to search. Audit entry "
        f"{res.audit_seq}.</p>"
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        "</title><style>body{font-family:sans-serif;margin:2em}.lead{border:1px solid #ccc;"
        "padding:.5em;margin:.5em 0}td,th{padding:2px 8px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{facts}<h2>Tracks</h2>{svg}<h2>Lead tracks</h2>"
        f"{''.join(leads) or '<p>No track gave a candidate.</p>'}</body></html>"
    )
