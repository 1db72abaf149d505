"""``faceledger cluster``: which of these unknown faces are the same person (audited once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceledger.cli.output import console, guarded
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.datasets import IMAGE_SUFFIXES
from faceledger.errors import InvalidArgument
from faceledger.usecases import (
    ClusterImages,
    ImagesClustered,
    cluster_images,
    clusters_json,
    render_clusters_html,
)


def _images(inputs: list[Path]) -> tuple[Path, ...]:
    """Image files given, and the image files of folders given (recursively, sorted)."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out += sorted(
                q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
            )
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidArgument(f"{p} is neither an image file nor a folder")
    return tuple(dict.fromkeys(out))


def cluster(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Images and folders of images.")],
    purpose: Annotated[str | None, typer.Option(help="Why (required, audited).")] = None,
    case: Annotated[str | None, typer.Option(help="Case reference (required, audited).")] = None,
    fmr: Annotated[
        float, typer.Option(help="Target false-match rate of a link between two faces.")
    ] = 1e-4,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the clusters as JSON here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML contact sheet (one row per cluster).")
    ] = None,
) -> None:
    """Group the faces of unknown people into identities: two faces of one image never
    together, low-quality faces never start a cluster, close calls listed as ambiguous."""
    settings: Settings = ctx.obj

    def run() -> ImagesClustered:
        images = _images(inputs)
        req = ClusterImages(images, purpose, case, fmr, thumbnails=report is not None)
        with workspace(settings) as (ws, me):
            return cluster_images(ws, me, req)

    res = guarded(run)
    if json_out is not None:
        json_out.write_text(json.dumps(clusters_json(res), indent=1) + "\n", encoding="utf-8")
    if report is not None:
        report.write_text(render_clusters_html(res), encoding="utf-8")
    table = Table(
        title=f"{len(res.clusters)} clusters of {len(res.faces)} faces from {res.images} images "
        f"(cosine >= {res.threshold:.4f} at FMR {res.target_fmr:g}, {res.method})"
    )
    for col in ("cluster", "faces", "images", "ambiguous"):
        table.add_column(col, justify="right")
    flagged = set(res.ambiguous)
    for k, members in enumerate(res.clusters):
        images = sorted({Path(res.faces[i].image).name for i in members})
        shown = ", ".join(images[:4]) + (f" +{len(images) - 4}" if len(images) > 4 else "")
        table.add_row(str(k), str(len(members)), shown, str(len(flagged & set(members))))
    console.print(table)
    console.print(
        f"{len(res.ambiguous)} ambiguous, {len(res.unassigned)} unassigned (low quality), "
        f"{len(res.failed)} unreadable; audit entry #{res.audit_seq}"
    )


def register(app: typer.Typer) -> None:
    app.command()(cluster)
