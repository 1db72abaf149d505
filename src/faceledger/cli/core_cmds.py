"""``detect``, ``verify`` and ``models``: the 1:1 core on the command line."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image, ImageDraw
from rich.table import Table

from faceledger.cli.output import (
    console,
    decision_json,
    face_json,
    face_used,
    fmr_text,
    guarded,
    print_json,
)
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import FaceSelection, Settings
from faceledger.embed.runtime import choose_runtime
from faceledger.models import ModelRegistry
from faceledger.pipeline import Engine, VerifyResult
from faceledger.types import FaceResult, Outcome
from faceledger.usecases import VerifyPair, verify_pair


def _draw(image_path: Path, faces: list[FaceResult], out: Path, engine: Engine) -> None:
    img = Image.fromarray(engine.load(image_path).pixels)
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 400))
    for i, f in enumerate(faces):
        b = f.detection.box
        colour = "lime" if f.quality.passes else "orange"
        draw.rectangle([b.left, b.top, b.right, b.bottom], outline=colour, width=width)
        for p in f.detection.landmarks.points:
            r = width + 1
            draw.ellipse([p.x - r, p.y - r, p.x + r, p.y + r], fill="red")
        draw.text((b.left + 2, b.top + 2), f"#{i} q{f.quality.score:.0f}", fill=colour)
    img.save(out)


def detect(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Image file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    draw: Annotated[
        Path | None, typer.Option(help="Write a copy with boxes and landmarks (PNG/JPEG).")
    ] = None,
) -> None:
    """Find every face: box, five landmarks, confidence and quality."""
    settings: Settings = ctx.obj
    engine = Engine(settings)
    faces = guarded(lambda: engine.detect(image))
    if draw is not None:
        guarded(lambda: _draw(image, faces, draw, engine))
    if json_out:
        print_json({"image": str(image), "faces": [face_json(f) for f in faces]})
        return
    table = Table(title=f"{len(faces)} face(s) in {image}")
    for col in (
        "#",
        "box (l,t,r,b)",
        "conf",
        "inter-eye px",
        "sharp",
        "yaw",
        "roll",
        "quality",
        "flags",
    ):
        table.add_column(col)
    for i, f in enumerate(faces):
        b, q = f.detection.box, f.quality
        table.add_row(
            str(i),
            f"{b.left:.0f},{b.top:.0f},{b.right:.0f},{b.bottom:.0f}",
            f"{f.detection.confidence:.2f}",
            f"{q.inter_eye_px:.0f}",
            f"{q.sharpness:.0f}",
            f"{q.yaw_deg:+.0f}°",
            f"{q.roll_deg:+.0f}°",
            f"{q.score:.0f}",
            ", ".join(q.flags) or "-",
        )
    console.print(table)


def verify(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="First image.")],
    b: Annotated[Path, typer.Argument(help="Second image.")],
    fmr: Annotated[
        float | None,
        typer.Option(help="Target false-match rate of the decision, e.g. 1e-4."),
    ] = None,
    face: Annotated[
        str | None,
        typer.Option(help="Face selection: primary (default), largest, central or only."),
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="Why (audited; required when so configured).")
    ] = None,
    case: Annotated[str | None, typer.Option(help="Case reference (audited).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """1:1 verification: are A and B the same person, at a stated false-match rate?

    With --purpose (or FACELEDGER_VERIFY_REQUIRES_PURPOSE=1) the verification is written to
    the workspace's audit log.
    """
    settings: Settings = ctx.obj
    selection: FaceSelection | None = face  # type: ignore[assignment]

    def run() -> VerifyResult:
        if purpose is None and case is None and not settings.verify_requires_purpose:
            return Engine(settings).verify(a, b, fmr=fmr, selection=selection)
        with workspace(settings) as (ws, me):
            return verify_pair(ws, me, VerifyPair(a, b, fmr, purpose, case, selection)).result

    res = guarded(run)
    dec = res.decision
    if json_out:
        print_json(
            {
                "a": {"image": str(a), "face": face_json(res.a)},
                "b": {"image": str(b), "face": face_json(res.b)},
                **decision_json(dec),
            }
        )
        return
    verdict = "[bold green]MATCH[/]" if dec.outcome is Outcome.MATCH else "[bold]NO MATCH[/]"
    console.print(f"{verdict} at target FMR {dec.target_fmr:g}")
    console.print(
        f"  similarity {dec.score:.4f} (threshold {dec.threshold:.4f}); estimated false-match "
        f"rate of this score: {fmr_text(dec.fmr)} (from {dec.fmr.impostor_pairs:,} impostor pairs)"
    )
    if dec.group_fmr:
        worst = max(dec.group_fmr, key=lambda g: g[1])
        console.print(
            "  measured FMR at this threshold by group: "
            + ", ".join(f"{n} {v:.1e}" for n, v in dec.group_fmr)
            + f" (worst: {worst[0]})"
        )
    for label, f in (("A", res.a), ("B", res.b)):
        flags = ", ".join(f.quality.flags)
        used = face_used(f)
        console.print(
            f"  {label}: quality {f.quality.score:.0f}/100"
            + (f" — flags: {flags}" if flags else "")
            + (f" — [yellow]{used}[/] (--face picks another policy)" if used else "")
        )
    console.print("  [dim]A match is a lead for a person to check, not an identification.[/]")


def models(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List model cards: files, checksums, calibration, and which runtime serves each."""
    settings: Settings = ctx.obj
    cards = guarded(lambda: ModelRegistry(settings.model_dir).cards())
    runtimes = {c.id: guarded(partial(choose_runtime, c, settings)) for c in cards}
    if json_out:
        out = []
        for c in cards:
            d = c.to_json()
            choice = runtimes[c.id]
            d["runtime"] = {
                "name": choice.runtime,
                "note": choice.note,
                "sha256": choice.card.file("embedder").sha256,
            }
            if d.get("calibration"):
                cal = d["calibration"]
                d["calibration"] = {
                    k: v for k, v in cal.items() if k not in ("overall", "groups")
                } | {
                    "impostor_pairs": cal["overall"]["impostor_pairs"],
                    "groups": sorted(cal["groups"]),
                }
            out.append(d)
        print_json(out)
        return
    for c in cards:
        console.print(f"[bold]{c.id}[/] v{c.version} — {c.name}")
        console.print(f"  backend {c.backend}, {c.dimension}-d, chip {c.align.size}px")
        choice = runtimes[c.id]
        console.print(
            f"  runtime [bold]{choice.runtime}[/]" + (f": {choice.note}" if choice.note else "")
        )
        for f in c.files:
            console.print(f"  file {f.role}: {f.filename} sha256 {f.sha256[:16]}…")
        if c.calibration is None:
            console.print("  [yellow]not calibrated[/]: run `faceledger calibrate`")
        else:
            cal = c.calibration
            console.print(
                f"  calibrated on {cal.overall.impostor_pairs:,} impostor pairs ({cal.source})"
            )
            for target in (1e-2, 1e-3, 1e-4, 1e-5):
                if target >= cal.min_fmr:
                    console.print(f"    FMR {target:g} → threshold {cal.threshold_for(target):.4f}")
        if c.licence:
            console.print(f"  [dim]licence: {c.licence}[/]")


def export_onnx(
    out: Annotated[Path, typer.Argument(help="Folder for the .onnx file and its model card.")],
) -> None:
    """Export dlib's ResNet to ONNX (same network, 3-9x faster bulk work), checked for parity.

    Then run with --model-dir OUT (or FACELEDGER_MODEL_DIR) to use it; templates are
    interchangeable with dlib's, so galleries and calibration stay valid.
    """
    from faceledger.embed.dlib_export import export_dlib_resnet_onnx

    res = guarded(lambda: export_dlib_resnet_onnx(out))
    console.print(
        f"wrote {res.model_path} (sha256 {res.sha256[:16]}…) and {res.card_path}; "
        f"parity on {res.faces_checked} faces, worst cosine {res.worst_cosine}"
    )


def register(app: typer.Typer) -> None:
    app.command("export-onnx")(export_onnx)
    app.command()(detect)
    app.command()(verify)
    app.command()(models)
