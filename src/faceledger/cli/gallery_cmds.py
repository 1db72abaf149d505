"""``gallery``, ``enroll``, ``search`` and ``subject``: galleries and 1:N on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceledger import usecases as uc
from faceledger.access import DEFAULT_ORG
from faceledger.cli.output import (
    console,
    decision_json,
    face_json,
    face_used,
    fmr_text,
    guarded,
    print_json,
    print_search,
    progress_bar,
)
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.store import LegalBasis
from faceledger.usecases.video_render import candidate_json

gallery_app = typer.Typer(help="Create, list, show and delete galleries.", no_args_is_help=True)
subject_app = typer.Typer(
    help="Show, export, delete subjects; verify erasure.", no_args_is_help=True
)


@gallery_app.command("create")
def gallery_create(
    ctx: typer.Context,
    name: str,
    legal_basis: Annotated[
        LegalBasis, typer.Option(help="Default legal basis for holding its subjects' data.")
    ],
    description: Annotated[str, typer.Option()] = "",
    retention_days: Annotated[
        int | None, typer.Option(help="Erase subjects after this many days.")
    ] = None,
    retention_hours: Annotated[
        int | None,
        typer.Option(help="Erase subjects after this many hours (instead of days)."),
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(help="Owning organisation (default: your own; others only locally)."),
    ] = None,
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        if retention_days is not None and retention_hours is not None:
            raise InvalidArgument("give --retention-days or --retention-hours, not both")
        with workspace(settings) as (ws, me):
            req = uc.CreateGallery(
                name, legal_basis, description, retention_days, retention_hours, org=org
            )
            g = uc.create_gallery(ws, me, req).gallery
            owner = ws.orgs.owner_of(g.name)
            console.print(f"created gallery {g.name!r} of {owner!r} (model {g.model_id})")

    guarded(run)


@gallery_app.command("list")
def gallery_list(
    ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            rows = []
            for info in uc.list_galleries(ws, me):
                g, c = info.gallery, info.counts
                rows.append(
                    {
                        "name": g.name,
                        "model_id": g.model_id,
                        "subjects": c.subjects,
                        "templates": c.templates,
                        "legal_basis": str(g.legal_basis),
                        "retention_days": g.retention_days,
                        "retention_hours": g.retention_hours,
                        "created_at": g.created_at.isoformat(),
                        "created_by": g.created_by,
                    }
                )
            if json_out:
                print_json(rows)
                return
            table = Table(title="galleries")
            for col in ("name", "subjects", "templates", "model", "legal basis", "retention"):
                table.add_column(col)
            for r in rows:
                table.add_row(
                    str(r["name"]),
                    str(r["subjects"]),
                    str(r["templates"]),
                    str(r["model_id"]),
                    str(r["legal_basis"]),
                    _period(r["retention_days"], r["retention_hours"]),
                )
            console.print(table)

    guarded(run)


def _period(days: object, hours: object) -> str:
    """A retention period in a table cell: ``30 d``, ``12 h``, or ``-`` for none."""
    if hours:
        return f"{hours} h"
    return f"{days} d" if days else "-"


@gallery_app.command("show")
def gallery_show(
    ctx: typer.Context,
    name: str,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    limit: Annotated[int, typer.Option(help="Subjects to list.")] = 50,
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            info = uc.show_gallery(ws, me, uc.ShowGallery(name, limit, check_index=True))
            g, c, sync = info.gallery, info.counts, info.index
            assert sync is not None
            data = {
                "name": g.name,
                "description": g.description,
                "model_id": g.model_id,
                "legal_basis": str(g.legal_basis),
                "retention_days": g.retention_days,
                "retention_hours": g.retention_hours,
                "subjects": c.subjects,
                "templates": c.templates,
                "index": g.index_description,
                "index_agrees_with_store": sync.agreed,
                "first_subjects": [s.external_id for s in info.first_subjects],
            }
            if json_out:
                print_json(data)
            else:
                for k, v in data.items():
                    console.print(f"[bold]{k}[/]: {v}")

    guarded(run)


@gallery_app.command("delete")
def gallery_delete(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    settings: Settings = ctx.obj
    if not yes:
        typer.confirm(f"delete gallery {name!r} and everything in it?", abort=True)

    def run() -> None:
        with workspace(settings) as (ws, me):
            n = uc.delete_gallery(ws, me, uc.DeleteGallery(name, reason, compact=True))
            console.print(f"deleted gallery {name!r} ({n} templates); database compacted")

    guarded(run)


def enroll(
    ctx: typer.Context,
    gallery: Annotated[str, typer.Argument(help="Gallery name.")],
    source: Annotated[
        Path,
        typer.Argument(
            help="An image (with --subject), a folder with one sub-folder per subject, or a "
            "CSV 'image,subject[,attributes...]'."
        ),
    ],
    subject: Annotated[
        str | None, typer.Option(help="Subject id when enrolling one image.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name (one image).")] = None,
    legal_basis: Annotated[LegalBasis | None, typer.Option()] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the bulk report (rejected images...) as JSON.")
    ] = None,
) -> None:
    """Enrol one image, or a folder/CSV in bulk on all cores (resumable: run it again)."""
    settings: Settings = ctx.obj

    def run() -> None:
        if not source.exists():
            raise InvalidArgument(f"{source}: no such image, folder or CSV file")
        one_image = source.is_file() and source.suffix.lower() != ".csv"
        if one_image and not subject:
            raise InvalidArgument("enrolling one image needs --subject")
        if not one_image and (subject or name):
            raise InvalidArgument(
                "--subject and --name are for one image; a folder or CSV names its subjects"
            )
        with workspace(settings) as (ws, me):
            if subject is not None:
                req = uc.EnrolImage(
                    gallery, subject, source, display_name=name, legal_basis=legal_basis
                )
                res = uc.enrol_image(ws, me, req)
                console.print(
                    f"enrolled {source.name} as {res.subject.external_id} "
                    f"(template {res.template_id}, quality {res.face.quality.score:.0f})"
                )
                for d in res.near_duplicates:
                    console.print(f"  [yellow]warning[/]: {_duplicate_text(d)}")
                return
            with progress_bar("enrolling", None) as bar:
                rep = uc.enrol_folder(
                    ws,
                    me,
                    uc.EnrolFolder(gallery, source, legal_basis),
                    on_total=lambda total, done: bar.set_total(total - done),
                    on_item=bar.advance,
                    on_counting=lambda: bar.describe("counting the gallery's own FPIR"),
                )
            _print_bulk(rep)
            if report:
                report.write_text(json.dumps(rep.as_json(), indent=1) + "\n")

    guarded(run)


def _duplicate_text(d: uc.NearDuplicate) -> str:
    return (
        f"the face of {d.subject} is also subject {d.other_subject}'s (score {d.score:.4f}, "
        f"estimated false-match rate {d.fmr:.1e}): one person under two ids?"
    )


def _print_bulk(rep: uc.BulkReport) -> None:
    console.print(
        f"job {rep.job_id}{' (resumed)' if rep.resumed else ''}: {rep.enrolled} enrolled, "
        f"{rep.duplicates} duplicate(s) skipped, {len(rep.rejected)} rejected, "
        f"{rep.already_done} done before; {rep.seconds:.1f} s"
    )
    for what, items in (("rejected", rep.rejected), ("skipped", rep.skipped)):
        for key, why in items[:20]:
            console.print(f"  {what} {key}: {why}")
        if len(items) > 20:
            console.print(f"  … {len(items) - 20} more {what} (see --report)")
    if rep.subjects_without_template:
        console.print(
            f"  subjects with no usable image: {', '.join(rep.subjects_without_template)}"
        )
    for key, d in rep.near_duplicates[:20]:
        console.print(f"  [yellow]warning[/] {key}: {_duplicate_text(d)}")
    if len(rep.near_duplicates) > 20:
        console.print(f"  … {len(rep.near_duplicates) - 20} more near-duplicates (see --report)")
    if rep.reindexed:
        r = rep.reindexed
        console.print(
            f"  index rebuilt for {r['size']:,} templates: {r['before']} -> {r['after']} "
            f"({r['reason']}; {r['seconds']} s)"
        )
    if rep.own_fpir_searches is not None:
        console.print(
            "  search thresholds counted on the gallery itself: "
            f"{rep.own_fpir_searches:,} members searched with their own subject left out"
        )


def _print_owners(res: uc.SearchResult) -> None:
    """Whose galleries the leads come from, and which stay redacted until their owner releases
    them (nothing for a workspace whose galleries all belong to the default organisation)."""
    owners = dict(res.owners)
    if not res.redacted and set(owners.values()) <= {DEFAULT_ORG}:
        return
    console.print(
        "galleries: "
        + ", ".join(
            f"{g} (owned by {owners.get(g, '?')}{', leads redacted' if g in res.redacted else ''})"
            for g in res.galleries
        ),
        highlight=False,
        soft_wrap=True,
    )
    for face in res.faces:
        for c in face.candidates:
            owner = owners.get(c.gallery, "?")
            where = f"  face {face.face.face_index} lead #{c.rank}: {c.gallery} of {owner}"
            if c.gallery in res.redacted:
                console.print(
                    f"{where}, [bold]redacted[/]: a reviewer of {owner} may release it "
                    f"(`faceledger review release {res.search_id} {c.rank} --note ...`)",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                console.print(where, highlight=False, soft_wrap=True)


def _search_json(res: uc.SearchResult) -> dict[str, object]:
    return {
        "search_id": res.search_id,
        "audit_seq": res.audit_seq,
        "probe_sha256": res.probe_sha256,
        "galleries": list(res.galleries),
        "model_id": res.model_id,
        "target_fpir": res.target_fpir,
        "templates_searched": res.templates_searched,
        "faces": [
            {
                "face": face_json(f.face),
                "outcome": f.outcome,
                "normalisation": f.normalisation,
                "threshold": f.threshold,
                "threshold_extrapolated": f.extrapolated,
                "comparison_fmr": f.comparison_fmr,
                "threshold_source": f.threshold_source,
                "candidates": [candidate_json(c) for c in f.candidates],
            }
            for f in res.faces
        ],
        "gallery_owners": dict(sorted(res.owners.items())),
        "redacted_galleries": sorted(res.redacted),
    }


def search_cmd(  # noqa: PLR0913 (one parameter per option)
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Probe image.")],
    gallery: Annotated[
        list[str], typer.Option("--gallery", "-g", help="Gallery to search (repeat).")
    ],
    purpose: Annotated[str, typer.Option(help="Why this search is done (required, audited).")],
    case: Annotated[str, typer.Option(help="Case reference (required, audited).")],
    k: Annotated[int | None, typer.Option(help="Longest candidate list per face.")] = None,
    fpir: Annotated[
        float | None, typer.Option(help="Target false-positive identification rate.")
    ] = None,
    all_faces: Annotated[bool, typer.Option("--all-faces", help="Search every face.")] = False,
    face: Annotated[
        list[int] | None,
        typer.Option(
            "--face", help="Search only this face (its index as `detect` lists it); repeatable."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """1:N search: a ranked candidate list for human review, or "no candidate"."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            req = uc.SearchRequest(
                image,
                tuple(gallery),
                purpose,
                case,
                k,
                fpir,
                all_faces,
                faces=tuple(face) if face else None,
            )
            res = uc.search(ws, me, req)
            if json_out:
                print_json(_search_json(res))
            else:
                print_search(res)
                _print_owners(res)

    guarded(run)


@subject_app.command("show")
def subject_show(ctx: typer.Context, gallery: str, subject: str) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            data = uc.export_subject(ws, me, gallery, subject)
            data.pop("templates", None)
            print_json(data)

    guarded(run)


@subject_app.command("export")
def subject_export(
    ctx: typer.Context,
    gallery: str,
    subject: str,
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")] = None,
) -> None:
    """Everything held on one subject, as JSON (subject access request)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            data = uc.export_subject(ws, me, gallery, subject)
            text = json.dumps(data, indent=1, default=str) + "\n"
            if out:
                out.write_text(text)
                console.print(f"wrote {out}")
            else:
                typer.echo(text)

    guarded(run)


@subject_app.command("delete")
def subject_delete(
    ctx: typer.Context,
    gallery: str,
    subject: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the erasure receipt).")],
    compact: Annotated[bool, typer.Option(help="Reclaim disk space now.")] = True,
) -> None:
    """Erase a subject from store and index at once; prints the erasure receipt."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            req = uc.EraseSubject(gallery, subject, reason, compact=compact)
            r = uc.erase_subject(ws, me, req).receipt
            console.print(
                f"erased {subject} from {gallery}: {len(r.template_ids)} template(s); "
                f"erasure receipt = audit entry {r.audit_seq}"
            )

    guarded(run)


@subject_app.command("verify")
def subject_verify(
    ctx: typer.Context,
    gallery: str,
    subject: str,
    image: Annotated[Path, typer.Argument(help="Image of the person to compare.")],
    purpose: Annotated[str | None, typer.Option(help="Why (audited).")] = None,
    case: Annotated[str | None, typer.Option(help="Case reference (audited).")] = None,
    fmr: Annotated[float | None, typer.Option(help="Target false-match rate.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """1:1: is the face in IMAGE the enrolled SUBJECT (its best-matching template)? Audited."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            req = uc.VerifySubject(gallery, subject, image, fmr, purpose, case)
            done = uc.verify_subject(ws, me, req)
            data = {
                "gallery": gallery,
                "subject": subject,
                "template_id": done.template_id,
                "audit_seq": done.audit_seq,
                "face": face_json(done.face),
                **decision_json(done.decision),
            }
            if json_out:
                print_json(data)
                return
            d = done.decision
            console.print(
                f"{d.outcome.value.upper()} against {gallery}/{subject} at target FMR "
                f"{d.target_fmr:g}: similarity {d.score:.4f} (threshold {d.threshold:.4f}), "
                f"estimated FMR {fmr_text(d.fmr)}; audit entry {done.audit_seq}"
            )
            if done.face.others:
                console.print(f"  [yellow]{face_used(done.face)}[/]")

    guarded(run)


@subject_app.command("verify-erased")
def subject_verify_erased(
    ctx: typer.Context,
    receipt: Annotated[int, typer.Argument(help="Audit entry number of the erasure receipt.")],
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            result = uc.check_erasure(ws, me, receipt)
            print_json(result.as_json())
            if not result.ok:
                raise typer.Exit(1)

    guarded(run)


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
    app.add_typer(subject_app, name="subject")
    app.command("enroll")(enroll)
    app.command("search")(search_cmd)
