"""``faceledger demo``: a short tour a new user runs right after installing."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from faceledger.cli.output import console, fmr_text, guarded
from faceledger.config import Settings
from faceledger.pipeline import Engine
from faceledger.types import Outcome

SHARED_LONDON = Path("../shared/data/london/images")


def sample_dir() -> Path:
    """The small CC BY 4.0 sample of London Set faces shipped inside the package."""
    return Path(str(resources.files("faceledger") / "sample"))


def _pick_images(data: Path) -> list[tuple[str, Path, Path]]:
    """(subject, neutral, smiling) triples found in ``data``."""
    triples = []
    for neutral in sorted(data.glob("*_neutral.jpg")):
        sid = neutral.name.split("_")[0]
        smiling = data / f"{sid}_smiling.jpg"
        if smiling.is_file():
            triples.append((sid, neutral, smiling))
    return triples


def demo(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder of London-Set-style images (<id>_neutral/_smiling.jpg)."),
    ] = None,
    people: Annotated[int, typer.Option(help="How many people to use.")] = 6,
    fmr: Annotated[float, typer.Option(help="Target false-match rate.")] = 1e-3,
) -> None:
    """Detect, assess, verify and compare faces on real photographs, with measured error rates."""
    settings: Settings = ctx.obj
    folder = data or (SHARED_LONDON if SHARED_LONDON.is_dir() else sample_dir())
    triples = _pick_images(folder)[:people]
    if len(triples) < 2:
        console.print(f"[red]need at least two people in {folder}[/]")
        raise typer.Exit(2)
    engine = Engine(settings)

    def run() -> None:
        card = engine.card
        console.rule("[bold]faceledger demo")
        console.print(f"images: {folder} ({len(triples)} people)")
        console.print(f"model: {card.id} — {card.name}")
        cal = card.calibration
        if cal is not None:
            console.print(
                f"calibration: {cal.overall.impostor_pairs:,} impostor pairs; at target FMR "
                f"{fmr:g} the similarity threshold is {cal.threshold_for(fmr):.4f}"
            )
        console.rule("1. detection and quality")
        neutral = triples[0][1]
        faces = engine.detect(neutral)
        for f in faces:
            q = f.quality
            console.print(
                f"{neutral.name}: face {f.detection.box.width:.0f}px wide, confidence "
                f"{f.detection.confidence:.2f}, quality {q.score:.0f}/100 "
                f"(sharpness {q.sharpness:.0f}, "
                f"yaw {q.yaw_deg:+.0f}°, roll {q.roll_deg:+.0f}°)"
            )
        console.rule(f"2. 1:1 verification at target FMR {fmr:g}")
        templates = {}
        for s, n, m in triples:
            templates[s] = (engine.embed(n).template, engine.embed(m).template)
        from faceledger.match import decide

        wrong = 0
        for s, (tn, tm) in templates.items():
            assert tn is not None and tm is not None
            d = decide(tn, tm, card, fmr)
            ok = d.outcome is Outcome.MATCH
            wrong += not ok
            console.print(
                f"person {s} neutral vs smiling: {'MATCH' if ok else 'no match'} "
                f"(similarity {d.score:.3f}, estimated FMR {fmr_text(d.fmr)})"
            )
        ids = list(templates)
        false_matches = 0
        pairs = 0
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                ta, tb = templates[a][0], templates[b][1]
                assert ta is not None and tb is not None
                d = decide(ta, tb, card, fmr)
                pairs += 1
                false_matches += d.outcome is Outcome.MATCH
        console.print(
            f"different people: {pairs} pairs compared, {false_matches} false match(es) "
            f"at target FMR {fmr:g}"
        )
        console.rule("what this means")
        console.print(
            "Every score comes with the false-match rate measured on impostor pairs "
            "(`faceledger models` shows where). A match is a lead for a trained person to "
            "review, never an identification."
        )
        if wrong:
            console.print(f"[yellow]{wrong} genuine pair(s) missed at this threshold[/]")

    guarded(run)


def register(app: typer.Typer) -> None:
    app.command()(demo)
