"""``audit``, ``retention`` and ``review``: accountability on the command line."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from faceledger import usecases as uc
from faceledger.audit import load_verify_key
from faceledger.audit.log import verify_jsonl
from faceledger.cli.output import console, guarded, print_json
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.review import LeadState

audit_app = typer.Typer(help="Verify, export and report on the audit log.", no_args_is_help=True)
retention_app = typer.Typer(help="Enforce galleries' retention periods.", no_args_is_help=True)
review_app = typer.Typer(help="Review the leads of searches.", no_args_is_help=True)


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"not an ISO date/time: {text!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        Path | None, typer.Option(help="A head saved earlier with `audit head` (catches rollback).")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="Trusted Ed25519 public key (PEM/hex) of the signer.")
    ] = None,
) -> None:
    """Check the whole hash chain; exit 1 and name the first bad entry if it fails."""
    settings: Settings = ctx.obj

    def run() -> None:
        req = uc.VerifyChain(
            None if anchor is None else _read(anchor, "anchor").decode("utf-8", "replace"),
            None if key is None else _read(key, "key"),
        )
        with workspace(settings) as (ws, me):
            rep = uc.verify_chain(ws, me, req)
            if rep.ok:
                console.print(f"audit log OK: {rep.entries} entries, {rep.signed_entries} signed")
                return
            console.print(
                f"[bold red]audit log BROKEN[/] at entry {rep.first_bad_position}: {rep.reason}"
            )
            raise typer.Exit(1)

    guarded(run)


@audit_app.command("verify-export")
def audit_verify_export(
    export: Annotated[Path, typer.Argument(help="A JSONL file written by `audit export`.")],
    key: Annotated[
        Path | None, typer.Option(help="Trusted Ed25519 public key (PEM/hex) of the signer.")
    ] = None,
    partial: Annotated[
        bool, typer.Option(help="The export is a window (--from/--to), not from entry 1.")
    ] = False,
) -> None:
    """Check an export without the database: every entry shown is rehashed, every link and
    signature checked; an organisation's export holds stubs for the entries it may not read."""

    def run() -> None:
        verify_key = None if key is None else load_verify_key(_read(key, "key"))
        try:
            with export.open(encoding="utf-8") as fp:
                rep = verify_jsonl(fp, verify_key=verify_key, partial=partial)
        except OSError as exc:
            raise InvalidArgument(f"cannot read {export}: {exc}") from exc
        if rep.ok:
            console.print(
                f"export OK: {rep.entries} entries ({rep.withheld_entries} withheld as stubs), "
                f"{rep.signed_entries} signed"
            )
            return
        console.print(f"[bold red]export BROKEN[/] at entry {rep.first_bad_position}: {rep.reason}")
        raise typer.Exit(1)

    guarded(run)


@audit_app.command("head")
def audit_head(ctx: typer.Context) -> None:
    """Print the chain head (keep copies elsewhere to detect truncation or rollback)."""
    settings: Settings = ctx.obj
    with workspace(settings) as (ws, _):
        print_json(ws.audit.head().to_json())


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="JSONL file (default: stdout).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO date/time.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO date/time.")] = None,
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            if out:
                with out.open("w", encoding="utf-8") as fh:
                    n = uc.export_audit(ws, me, fh, _when(start), _when(end))
                console.print(f"exported {n} entries to {out}")
            else:
                uc.export_audit(ws, me, sys.stdout, _when(start), _when(end))

    guarded(run)


@audit_app.command("report")
def audit_report(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="ISO date/time.")],
    end: Annotated[str, typer.Option("--to", help="ISO date/time.")],
    org: Annotated[
        str | None, typer.Option(help="Lead rates of this organisation (as owner, requester).")
    ] = None,
    agreement: Annotated[
        str | None, typer.Option(help="Lead rates of the searches under this agreement.")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the lead-rate report here (JSON).")
    ] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write the lead-rate report here (HTML).")
    ] = None,
) -> None:
    """Searches by purpose and gallery, candidate and confirmation rates, reviewers, deletions;
    with --org or --agreement, lead rates per organisation and agreement instead."""
    settings: Settings = ctx.obj

    def run() -> None:
        s, e = _when(start), _when(end)
        assert s is not None and e is not None
        with workspace(settings) as (ws, me):
            if org is None and agreement is None:
                if json_file is not None or html_file is not None:
                    raise InvalidArgument("--json and --html need --org or --agreement")
                print_json(uc.audit_use_report(ws, me, s, e))
                return
            report = uc.org_report(ws, me, uc.OrgReportRequest(org, s, e, agreement))
        _write_org_report(report, json_file, html_file)

    guarded(run)


def _write_org_report(report: uc.OrgReport, json_file: Path | None, html_file: Path | None) -> None:
    data = report.to_json()
    if json_file is not None:
        json_file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
        console.print(f"wrote {json_file}")
    if html_file is not None:
        html_file.write_text(uc.render_org_report_html(report), "utf-8")
        console.print(f"wrote {html_file}")
    if json_file is None and html_file is None:
        print_json(data)
        return
    t = report.total
    rate = t.lead_rate.value
    console.print(
        f"{t.searches} searches, {t.searches_with_leads} with leads"
        + ("" if rate is None else f" ({100 * rate:.1f} %)")
        + f", {t.outcomes.get('confirmed', 0)} confirmed lead(s)"
    )


@retention_app.command("apply")
def retention_apply(
    ctx: typer.Context,
    gallery: Annotated[str | None, typer.Option(help="Only this gallery.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Erase subjects held past their gallery's retention period (a receipt for each) and
    delete kept probe images past theirs; the run is logged."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            done = uc.apply_retention(ws, me, uc.ApplyRetention(gallery, compact=True))
            if json_out:
                print_json(
                    {
                        "receipts": [r.audit_seq for r in done.receipts],
                        "subjects": [f"{r.gallery}/{r.subject}" for r in done.receipts],
                        "probes_deleted": list(done.probes_deleted),
                        "cluster_sets_deleted": list(done.cluster_sets_deleted),
                        "failed": list(done.failed),
                    }
                )
                return
            console.print(
                f"retention: {len(done.receipts)} subject(s) erased, "
                f"{len(done.probes_deleted)} kept probe image(s) deleted, "
                f"{len(done.cluster_sets_deleted)} expired cluster set(s) deleted"
            )
            for r in done.receipts:
                console.print(f"  {r.gallery}/{r.subject}: receipt = audit entry {r.audit_seq}")
            for search_id in done.probes_deleted:
                console.print(f"  probe of search {search_id} deleted")
            for failure in done.failed:
                console.print(f"  [bold red]not erased[/] {failure} (retried by the next run)")
            if done.failed:
                raise typer.Exit(1)

    guarded(run)


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Most searches to list.")] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Searches with leads awaiting a decision by the operator, oldest first."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            page = uc.review_queue(ws, me, limit=limit)
            if json_out:
                print_json([_queue_json(f) for f in page.items])
                return
            if not page.items:
                console.print("no search has a lead awaiting your decision")
            for found in page.items:
                rec = found.record
                console.print(
                    f"{rec.search_id} by {rec.actor} ({rec.purpose}, case {rec.case_ref}):"
                )
                for lead in _shown(found):
                    if lead.rank in found.blind:
                        console.print(
                            f"  #{lead.rank} {lead.lead.gallery}/{lead.lead.subject_id}: look "
                            "at the two faces first (`review look`), then the score is shown"
                        )
                        continue
                    console.print(
                        f"  #{lead.rank} {lead.lead.gallery}/{lead.lead.subject_id} "
                        f"score {lead.lead.score:.4f}: {lead.status}"
                    )
            if page.next_offset is not None:
                console.print(f"[dim]… more: --limit {page.next_offset + limit}[/]")

    guarded(run)


def _shown(found: uc.VisibleSearch) -> list[LeadState]:
    return [
        s
        for s in found.record.leads
        if found.galleries is None or s.lead.gallery in found.galleries
    ]


def _queue_json(found: uc.VisibleSearch) -> dict[str, object]:
    rec = found.record
    return {
        "search_id": rec.search_id,
        "actor": rec.actor,
        "purpose": rec.purpose,
        "case_ref": rec.case_ref,
        "galleries": list(rec.galleries),
        "leads": [
            {
                "rank": s.rank,
                "gallery": s.lead.gallery,
                "subject": s.lead.subject_id,
                "blind": s.rank in found.blind,
                "score": None if s.rank in found.blind else s.lead.score,
                "status": None if s.rank in found.blind else str(s.status),
            }
            for s in _shown(found)
        ],
    }


@review_app.command("look")
def review_look(
    ctx: typer.Context,
    search_id: str,
    rank: int,
    judgement: Annotated[str, typer.Argument(help="same, different or unsure")],
) -> None:
    """Record your first judgement of a lead's two faces (the probe and the candidate's
    enrolled image), made before seeing its score; a verdict needs it under blind review."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            state = uc.record_first_look(ws, me, uc.FirstLookAt(search_id, rank, judgement))
            console.print(
                f"first look at lead #{rank} of {search_id} recorded: {judgement}; its score "
                f"is {state.lead.score:.4f} (status {state.status})"
            )

    guarded(run)


@review_app.command("decide")
def review_decide(
    ctx: typer.Context,
    search_id: str,
    rank: int,
    verdict: Annotated[str, typer.Argument(help="confirmed, rejected or inconclusive")],
    note: Annotated[str, typer.Option(help="Why (required).")],
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            state = uc.decide_lead(ws, me, uc.DecideLead(search_id, rank, verdict, note))
            console.print(f"lead #{rank} of {search_id}: {state.status}")

    guarded(run)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")
    app.add_typer(review_app, name="review")
