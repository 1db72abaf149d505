"""``faceledger document read`` and ``faceledger document check``: parse, call the use case,
render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from faceledger import usecases as uc
from faceledger.cli.output import console, guarded, print_json
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings

document_app = typer.Typer(
    help="Identity documents: read the MRZ and portrait; check a live face against them."
)

JsonOpt = Annotated[
    Path | None, typer.Option("--json", help="Write the result here ('-': print it).")
]


@document_app.command("read")
def document_read(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="Photo or scan of a passport, ID card or visa.")],
    json_out: JsonOpt = None,
) -> None:
    """Find and read the machine-readable zone, check every check digit, find the portrait.
    Nothing is stored and nothing is audited: it reads an image you hold."""
    settings: Settings = ctx.obj

    def run() -> uc.DocumentRead:
        with workspace(settings) as (ws, me):
            return uc.read_document(ws, me, uc.ReadDocument(image))

    done = guarded(run)
    data = done.as_json()
    if _write_json(json_out, data):
        return
    _print_mrz(data["mrz"])
    _print_portrait(data["portrait"])


@document_app.command("check")
def document_check(
    ctx: typer.Context,
    document: Annotated[Path, typer.Argument(help="Photo or scan of the identity document.")],
    live: Annotated[Path, typer.Option(help="Photo of the person presenting it.")],
    purpose: Annotated[str, typer.Option(help="Why this check is done (required, audited).")],
    case: Annotated[str, typer.Option(help="Case reference (required, audited).")],
    fmr: Annotated[
        float | None, typer.Option(help="Target false-match rate of the face comparison.")
    ] = None,
    hash_document_number: Annotated[
        bool,
        typer.Option(help="Record the document number in the audit log only as a keyed hash."),
    ] = True,
    json_out: JsonOpt = None,
) -> None:
    """Read the document, compare its portrait with the live face at the target FMR, and give
    one decision (pass, or refer to an officer) with its reasons. Audited; nothing is kept."""
    settings: Settings = ctx.obj

    def run() -> uc.DocumentChecked:
        req = uc.CheckDocument(document, live, purpose, case, fmr, hash_document_number)
        with workspace(settings) as (ws, me):
            return uc.check_document(ws, me, req)

    done = guarded(run)
    data = done.as_json()
    if _write_json(json_out, data):
        return
    colour = "green" if data["decision"] == "pass" else "yellow"
    console.print(
        f"[bold {colour}]{data['decision'].upper()}[/]: "
        + ", ".join(data["reasons"])
        + f"  (audit entry {data['audit_seq']})"
    )
    cmp = data["comparison"]
    if cmp is not None:
        console.print(
            f"  face: {cmp['outcome']} at target FMR {cmp['target_fmr']:g} "
            f"(similarity {cmp['score']:.4f}, threshold {cmp['threshold']:.4f}; estimated "
            f"false-match rate of this score {cmp['fmr']:.1e})"
        )
    if data["mrz"] is None:
        console.print(f"  no MRZ checked: {data['mrz_error']}")
    else:
        _print_mrz(data["mrz"])
    _print_portrait(data["portrait"])


def _write_json(target: Path | None, data: dict[str, Any]) -> bool:
    if target is None:
        return False
    if str(target) == "-":
        print_json(data)
    else:
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
        console.print(f"written {target}")
    return True


def _print_mrz(mrz: dict[str, Any]) -> None:
    state = "[bold green]valid[/]" if mrz["valid"] else "[bold red]INVALID[/]"
    expired = {True: ", [bold red]expired[/]", False: ", not expired", None: ""}[mrz["expired"]]
    console.print(f"MRZ {mrz['format']}: {state}{expired}")
    for line in mrz["lines"]:
        console.print(f"  [dim]{line}[/]")
    table = Table("field", "value", "protected by a check digit")
    unchecked = set(mrz["unchecked_fields"])
    for name, value in mrz["fields"].items():
        if name.endswith("_iso"):
            continue
        table.add_row(name, str(value), "no" if name in unchecked else "yes")
    console.print(table)
    for check in mrz["checks"]:
        mark = "[green]ok[/]" if check["ok"] else "[red]FAIL[/]"
        console.print(
            f"  check {check['name']}: read {check['read']}, expected {check['expected']} {mark}"
        )
    for note in mrz["corrections"]:
        console.print(f"  corrected: {note}")
    if mrz.get("doubtful"):
        where = ", ".join(f"line {line + 1} column {col + 1}" for line, col in mrz["doubtful"])
        console.print(f"  [yellow]doubtful characters (no check digit covers them): {where}[/]")


def _print_portrait(portrait: dict[str, Any] | None) -> None:
    if portrait is None:
        console.print("portrait: none found")
        return
    q = portrait["quality"]
    console.print(
        f"portrait: quality {q['score']:.0f}/100, {q['inter_eye_px']:.0f} px between the eyes"
        + (f"; fails {', '.join(q['flags'])}" if q["flags"] else "")
    )
    for note in portrait["notes"]:
        console.print(f"  [yellow]{note}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(document_app, name="document")
