"""``faceledger calibrate``: measure score → false-match rate on impostor pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from faceledger.batch import embed_paths
from faceledger.cache import open_cache
from faceledger.cli.output import console, guarded, progress_bar
from faceledger.config import Settings
from faceledger.datasets import LabelledImage, read_image_set
from faceledger.match.calibrate import build_table
from faceledger.models import ModelRegistry


def calibrate(
    ctx: typer.Context,
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Image sets: folders with one sub-folder per subject, or CSVs "
            "'image,subject,...' (without a subject column every row is a different person)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the calibrated model card (JSON).")],
    group_column: Annotated[
        list[str] | None,
        typer.Option(help="CSV column(s) holding a group label for per-group curves."),
    ] = None,
    worst_group: Annotated[
        bool,
        typer.Option(help="Thresholds at which every group meets the target FMR."),
    ] = False,
    cache: Annotated[
        bool, typer.Option(help="Reuse templates cached by image hash under the data dir.")
    ] = True,
) -> None:
    """Build the model's calibration table from all impostor pairs of the given sets.

    Every pair of images of different subjects (also across sets) is an impostor pair.
    Point FACELEDGER_MODEL_DIR (or --model-dir) at OUT's folder to use the new table.
    """
    settings: Settings = ctx.obj

    def run() -> None:
        items: list[LabelledImage] = []
        for src in sources:
            items.extend(read_image_set(src))
        card = ModelRegistry(settings.model_dir).get(settings.model_id)
        store = open_cache(settings, card.file("embedder").sha256) if cache else None
        with progress_bar("embedding", len(items)) as advance:
            outcomes = embed_paths(
                [i.path for i in items], settings, on_done=lambda _o: advance(), cache=store
            )
        keep = [k for k, o in enumerate(outcomes) if o.result and o.result.template]
        skipped = len(items) - len(keep)
        vectors = np.stack(
            [outcomes[k].result.template.vector for k in keep]  # type: ignore[union-attr]
        )
        subjects = [items[k].subject for k in keep]
        groups = {
            col: [items[k].attributes.get(col) or None for k in keep]
            for col in (group_column or [])
        }
        names = ", ".join(str(s) for s in sources)
        table = build_table(
            vectors,
            subjects,
            groups,
            worst_group=worst_group,
            source=f"{len(keep)} images of {len(set(subjects))} subjects from {names}; "
            f"{skipped} images without a usable face left out",
        )
        card.with_calibration(table).save(out)
        console.print(
            f"calibrated {card.id} on {table.overall.impostor_pairs:,} impostor pairs "
            f"({len(keep)} images, {skipped} without a face) → {out}"
        )
        for target in (1e-2, 1e-3, 1e-4, 1e-5):
            if target >= table.min_fmr:
                console.print(f"  FMR {target:g} → threshold {table.threshold_for(target):.4f}")
        for name, curve in sorted(table.groups.items()):
            console.print(
                f"  group {name}: {curve.impostor_pairs:,} pairs, threshold at FMR 1e-3 "
                + (f"{curve.threshold_for(1e-3):.4f}" if curve.impostor_pairs >= 1000 else "n/a")
            )

    guarded(run)


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
