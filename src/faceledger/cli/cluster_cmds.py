"""``faceledger cluster``: which of these unknown faces are the same person (audited once);
``faceledger clusters``: review a kept cluster set (merge, split, name, dismiss, undo, enrol)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceledger.access import User
from faceledger.cli.output import console, guarded, print_json
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.datasets import IMAGE_SUFFIXES
from faceledger.errors import InvalidArgument
from faceledger.gallery import Workspace
from faceledger.review.cluster_sets import ClusterSet
from faceledger.usecases import (
    ClusterEnrolled,
    ClusterImages,
    EnrolCluster,
    ImagesClustered,
    cluster_images,
    cluster_set_json,
    clusters_json,
    dismiss_cluster,
    enrol_cluster,
    merge_clusters,
    name_cluster,
    render_clusters_html,
    show_cluster_set,
    split_cluster,
    undo_cluster_action,
)
from faceledger.video.kind import VIDEO_SUFFIXES

clusters_app = typer.Typer(
    help="Review a kept cluster set (`faceledger cluster --keep`): merge, split, name, "
    "dismiss, undo, enrol a cluster as a subject.",
    no_args_is_help=True,
)


def _images(inputs: list[Path]) -> tuple[Path, ...]:
    """Files given, and the image and video files of folders given (recursively, sorted)."""
    wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in wanted)
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidArgument(f"{p} is neither a file nor a folder")
    return tuple(dict.fromkeys(out))


def cluster(
    ctx: typer.Context,
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Images, videos (each track one face) and folders of them."),
    ],
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
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Keep the result as a cluster set for review (`faceledger clusters`), "
            "deleted after the retention period.",
        ),
    ] = False,
) -> None:
    """Group the faces of unknown people into identities: two faces of one image never
    together, low-quality faces never start a cluster, close calls listed as ambiguous."""
    settings: Settings = ctx.obj

    def run() -> ImagesClustered:
        images = _images(inputs)
        req = ClusterImages(images, purpose, case, fmr, thumbnails=report is not None, keep=keep)
        with workspace(settings) as (ws, me):
            return cluster_images(ws, me, req)

    res = guarded(run)
    if json_out is not None:
        json_out.write_text(json.dumps(clusters_json(res), indent=1) + "\n", encoding="utf-8")
    if report is not None:
        report.write_text(render_clusters_html(res), encoding="utf-8")
    table = Table(
        title=f"{len(res.clusters)} clusters of {len(res.faces)} faces from {res.images} images"
        f"{f' and {res.videos} videos' if res.videos else ''} "
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
    if res.set_id is not None:
        console.print(f"kept as cluster set {res.set_id}")


def _on_set(settings: Settings, act: Callable[[Workspace, User], ClusterSet]) -> ClusterSet:
    def run() -> ClusterSet:
        with workspace(settings) as (ws, me):
            return act(ws, me)

    return guarded(run)


def _show(cs: ClusterSet) -> None:
    table = Table(
        title=f"cluster set {cs.set_id}: {len(cs.clusters)} clusters of {len(cs.faces)} faces "
        f"(case {cs.case_ref}, kept until {cs.expires_at:%Y-%m-%d %H:%M} UTC)"
    )
    for col in ("cluster", "faces", "video tracks", "ambiguous", "label", "dismissed"):
        table.add_column(col)
    for c in cs.clusters:
        flagged = sum(cs.faces[i].ambiguous for i in c.faces)
        tracks = [cs.faces[i].span for i in c.faces]
        table.add_row(
            str(c.cluster),
            " ".join(map(str, c.faces)),
            " ".join(f"{s[0]:.1f}–{s[1]:.1f}s" for s in tracks if s is not None),
            str(flagged),
            c.label or "",
            (c.dismiss_reason or "yes") if c.dismissed else "",
        )
    console.print(table, markup=False)
    loose = [f.face_no for f in cs.faces if f.cluster < 0]
    if loose:
        console.print(f"in no cluster: faces {' '.join(map(str, loose))}")
    live = [a for a in cs.actions if not a.undone and a.action != "undo"]
    console.print(f"{len(cs.actions)} review actions ({len(live)} in effect)")


@clusters_app.command("show")
def show_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the set as JSON.")] = False,
) -> None:
    """A kept set's clusters, with their faces (numbers), labels and dismissals."""
    cs = _on_set(ctx.obj, lambda ws, me: show_cluster_set(ws, me, set_id))
    if json_out:
        print_json(cluster_set_json(cs))
    else:
        _show(cs)


@clusters_app.command("merge")
def merge_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    into: Annotated[int, typer.Argument(help="The cluster kept.")],
    other: Annotated[int, typer.Argument(help="The cluster merged into it.")],
) -> None:
    """Merge two clusters (refused when it would join two faces of one image)."""
    _show(_on_set(ctx.obj, lambda ws, me: merge_clusters(ws, me, set_id, into, other)))


@clusters_app.command("split")
def split_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    cluster: Annotated[int, typer.Argument(help="The cluster to split.")],
    face: Annotated[
        list[int], typer.Option("--face", help="A face (number) to move to a new cluster.")
    ],
) -> None:
    """Move the faces given to a new cluster."""
    faces = tuple(face)
    _show(_on_set(ctx.obj, lambda ws, me: split_cluster(ws, me, set_id, cluster, faces)))


@clusters_app.command("name")
def name_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    cluster: Annotated[int, typer.Argument(help="The cluster.")],
    label: Annotated[str, typer.Argument(help="A free label (not an identity).")],
) -> None:
    """Label a cluster for the investigation."""
    _show(_on_set(ctx.obj, lambda ws, me: name_cluster(ws, me, set_id, cluster, label)))


@clusters_app.command("dismiss")
def dismiss_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    cluster: Annotated[int, typer.Argument(help="The cluster.")],
    reason: Annotated[str, typer.Option(help="Why it is not a person (audited).")],
) -> None:
    """Reject a cluster as a person: it can no longer be enrolled."""
    _show(_on_set(ctx.obj, lambda ws, me: dismiss_cluster(ws, me, set_id, cluster, reason)))


@clusters_app.command("undo")
def undo_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
) -> None:
    """Undo the set's last review action."""
    _show(_on_set(ctx.obj, lambda ws, me: undo_cluster_action(ws, me, set_id)))


@clusters_app.command("enrol")
def enrol_cmd(
    ctx: typer.Context,
    set_id: Annotated[str, typer.Argument(help="The cluster set's id.")],
    cluster: Annotated[int, typer.Argument(help="The cluster to enrol.")],
    gallery: Annotated[str, typer.Option(help="The gallery to enrol into.")],
    subject: Annotated[str, typer.Option(help="The new (or existing) subject's id.")],
    legal_basis: Annotated[str, typer.Option(help="consent, statute, warrant or other.")],
    note: Annotated[str, typer.Option(help="Why (audited).")] = "",
) -> None:
    """Enrol a reviewed cluster's faces as a subject of a gallery (audited)."""
    settings: Settings = ctx.obj
    req = EnrolCluster(set_id, cluster, gallery, subject, legal_basis, note)

    def run() -> ClusterEnrolled:
        with workspace(settings) as (ws, me):
            return enrol_cluster(ws, me, req)

    done = guarded(run)
    console.print(
        f"enrolled {len(done.template_ids)} face(s) of cluster {cluster} as subject "
        f"{done.subject.external_id!r} of gallery {gallery!r}; audit entry #{done.audit_seq}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(cluster)
    app.add_typer(clusters_app, name="clusters")
