"""``faceledger video search`` and ``faceledger video watch``: parse, call the use case, render."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceledger import usecases as uc
from faceledger.cli.output import console, err_console, guarded, progress_bar
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.usecases.video_render import FALSE_ALERT_NOTE, html_report, result_json
from faceledger.video import DrawTrack, ScanSettings, draw_leads

video_app = typer.Typer(help="Search recorded or live video against galleries (audited).")

GalleryOpt = Annotated[list[str], typer.Option("--gallery", "-g", help="Gallery (repeat).")]
PurposeOpt = Annotated[str, typer.Option(help="Why this search is done (required, audited).")]
CaseOpt = Annotated[str, typer.Option(help="Case reference (required, audited).")]
FpirOpt = Annotated[
    float | None, typer.Option(help="Target false-positive identification rate per track.")
]
FpsOpt = Annotated[float, typer.Option(help="Frames examined per second of video.")]
SizeOpt = Annotated[
    int, typer.Option(help="Detect on a copy no larger than this (px, longer side).")
]


@video_app.command("search")
def video_search(  # noqa: PLR0913 (one parameter per command-line option)
    ctx: typer.Context,
    video: Annotated[Path, typer.Argument(help="Video file (mp4, mov, mkv, avi, webm, ogg).")],
    gallery: GalleryOpt,
    purpose: PurposeOpt,
    case: CaseOpt,
    fpir: FpirOpt = None,
    k: Annotated[int | None, typer.Option(help="Longest candidate list per track.")] = None,
    sample_fps: FpsOpt = ScanSettings.sample_fps,
    detect_size: SizeOpt = ScanSettings.detect_max_side,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    draw: Annotated[
        Path | None,
        typer.Option(help="Write a copy showing lead tracks only, everything else blurred."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """One search per tracked person; faces of tracks without a candidate are discarded."""
    settings: Settings = ctx.obj

    def run() -> None:
        scan = ScanSettings(sample_fps=sample_fps, detect_max_side=detect_size)
        req = uc.VideoSearchRequest(video, tuple(gallery), purpose, case, fpir, k, scan)
        with workspace(settings) as (ws, me), progress_bar("video", None, progress) as bar:

            def tick(p: uc.VideoProgress) -> None:
                if p.duration_s:
                    bar.set_total(max(1, math.ceil(p.duration_s * sample_fps)))
                bar.advance()

            res = uc.search_video(ws, me, req, progress=tick)
        _print(res)
        if json_out is not None:
            json_out.write_text(json.dumps(result_json(res), indent=1) + "\n")
            console.print(f"wrote {json_out}")
        if report is not None:
            report.write_text(html_report(res, f"Video search {video.name}"), encoding="utf-8")
            console.print(f"wrote {report}")
        if draw is not None:
            tracks = [
                DrawTrack(f"track {t.track_id}: {t.candidates[0].external_id}?", t.keyframes)
                for t in res.lead_tracks
            ]
            n = draw_leads(video, draw, tracks)
            console.print(f"wrote {draw} ({n} frames; lead tracks only, all else blurred)")

    guarded(run)


def _print(res: uc.VideoSearchResult) -> None:
    info = res.video
    rt = res.realtime_factor
    console.print(
        f"video search {res.video_search_id} (audit entry {res.audit_seq}): "
        f"{info.width}x{info.height} {info.codec}, {info.duration_s or 0:.1f} s; "
        f"{res.frames_sampled} of {res.frames_decoded} frames examined in "
        f"{res.processing_seconds:.1f} s" + (f" ({rt:.1f}x real time)" if rt else "")
    )
    console.print(
        f"{res.tracks_searched} tracks searched in {', '.join(res.galleries)} "
        f"({res.templates_searched} templates) at target FPIR {res.target_fpir:g}: "
        f"{len(res.lead_tracks)} with leads, {res.tracks_discarded} without (discarded); "
        f"[bold]expected false alerts {res.expected_false_alerts:.2f}[/]"
    )
    if not res.lead_tracks:
        console.print("[bold]no candidate[/] in any track")
    for t in res.lead_tracks:
        table = Table(title=f"track {t.track_id}: {t.start_s:.2f}-{t.end_s:.2f} s")
        for col in ("rank", "gallery", "subject", "score", "est. FMR", "est. FPIR"):
            table.add_column(col)
        for c in t.candidates:
            table.add_row(
                str(c.rank),
                c.gallery,
                c.external_id,
                f"{c.score:.4f}",
                f"{c.fmr.value:.1e}",
                "-" if c.fpir is None else f"{c.fpir:.1e}",
            )
        console.print(table)
    console.print(f"[dim]{FALSE_ALERT_NOTE}[/]")


@video_app.command("watch")
def video_watch(  # noqa: PLR0913 (one parameter per command-line option)
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Camera device, rtsp:// URL, or a file.")],
    gallery: GalleryOpt,
    purpose: PurposeOpt,
    case: CaseOpt,
    fpir: FpirOpt = None,
    k: Annotated[int | None, typer.Option(help="Longest candidate list per alert.")] = None,
    sample_fps: FpsOpt = ScanSettings.sample_fps,
    detect_size: SizeOpt = ScanSettings.detect_max_side,
    until: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: source end).")
    ] = None,
    realtime: Annotated[
        bool, typer.Option(help="Play a file at its own pace, as a camera would deliver it.")
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--jsonl", help="Print each alert as one JSON line.")
    ] = False,
) -> None:
    """Live watch: alerts as they happen; frames dropped when processing falls behind."""
    settings: Settings = ctx.obj

    def alert(a: uc.Alert) -> None:
        t = a.track
        if json_lines:
            print_json_line(
                {
                    "alert_audit_seq": a.audit_seq,
                    "search_id": a.search_id,
                    "track_id": t.track_id,
                    "start_s": round(t.start_s, 3),
                    "latency_s": round(a.latency_s, 3),
                    "candidates": [
                        {
                            "rank": c.rank,
                            "gallery": c.gallery,
                            "subject": c.external_id,
                            "score": round(c.score, 6),
                            "fmr": c.fmr.value,
                        }
                        for c in t.candidates
                    ],
                }
            )
            return
        top = t.candidates[0]
        console.print(
            f"[bold red]alert[/] track {t.track_id} at {t.start_s:.1f} s: {top.external_id} "
            f"({top.gallery}, score {top.score:.4f}, est. FMR {top.fmr.value:.1e}) + "
            f"{len(t.candidates) - 1} more; review {a.search_id} (latency {a.latency_s:.1f} s)"
        )

    def run() -> None:
        scan = ScanSettings(
            sample_fps=sample_fps, detect_max_side=detect_size, early_hits=uc.DEFAULT_EARLY_HITS
        )
        req = uc.VideoWatchRequest(
            source, tuple(gallery), purpose, case, fpir, k, scan, realtime=realtime, until_s=until
        )
        with workspace(settings) as (ws, me):
            try:
                s = uc.watch_video(ws, me, req, on_alert=alert)
            except KeyboardInterrupt:
                err_console.print("stopped")
                raise typer.Exit(130) from None
        summary = (
            f"watch {s.watch_id} stopped ({s.stopped_by}) after {s.seconds:.1f} s: "
            f"{s.frames_sampled} frames examined, {s.frames_dropped} dropped, "
            f"{s.faces_detected} faces, {s.tracks_searched} tracks, {s.alerts} alerts, "
            f"{s.tracks_discarded} tracks discarded; audit entries {s.start_seq}-{s.stop_seq}"
        )
        if json_lines:
            print_json_line({"summary": summary, "alerts": s.alerts, "dropped": s.frames_dropped})
        else:
            console.print(summary)

    guarded(run)


def print_json_line(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.add_typer(video_app, name="video")
