"""``org``, ``agreement`` and ``review release``: organisations and what they share.

The deployment's operator (the local operator, or an ``operator`` account) creates
organisations; each organisation's administrators define its purpose categories and share
its galleries with others through agreements; a reviewer of the owner releases a redacted
lead. The rules are :mod:`faceledger.access.orgs`; these commands only read and print.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from faceledger import usecases as uc
from faceledger.access import Agreement, AgreementTerms, GrantLevel
from faceledger.audit.records import format_timestamp
from faceledger.cli.audit_cmds import review_app
from faceledger.cli.output import console, guarded, print_json
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.errors import InvalidArgument

org_app = typer.Typer(help="Organisations and their purpose categories.", no_args_is_help=True)
agreement_app = typer.Typer(
    help="Agreements sharing a gallery with another organisation.", no_args_is_help=True
)

_LEVELS = ", ".join(str(level) for level in (GrantLevel.SEARCH, GrantLevel.VIEW_IMAGES))


def parse_when(text: str, option: str) -> datetime:
    """An ISO 8601 date or date-time; one without a zone is UTC."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(f"{option}: not an ISO 8601 date/time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _level(text: str | None) -> GrantLevel | None:
    if text is None:
        return None
    try:
        return GrantLevel(text.strip().lower())
    except ValueError:
        raise InvalidArgument(f"--level must be one of {_LEVELS}, not {text!r}") from None


# -- organisations ---------------------------------------------------------------------------


@org_app.command("create")
def org_create(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Argument(help="Identifier (letters, digits, . _ @ -).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
) -> None:
    """Create an organisation (the deployment's operator).

    Then create its administrator: `faceledger users create NAME --role admin --org ORG_ID --key`.
    """
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            org = uc.create_org(ws, me, uc.CreateOrg(org_id, name))
            console.print(f"created organisation {org.id!r} ({org.display_name})")

    guarded(run)


@org_app.command("list")
def org_list(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The organisations you may know of (every one for the deployment's operator)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            rows = [
                {
                    "id": o.id,
                    "display_name": o.display_name,
                    "created_at": None if o.created_at is None else format_timestamp(o.created_at),
                }
                for o in uc.list_orgs(ws, me)
            ]
            if json_out:
                print_json(rows)
                return
            table = Table(title="organisations")
            for col in ("id", "name", "created"):
                table.add_column(col)
            for r in rows:
                table.add_row(str(r["id"]), str(r["display_name"]), str(r["created_at"] or "-"))
            console.print(table)

    guarded(run)


@org_app.command("purpose-add")
def org_purpose_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The purpose category, as searches state it.")],
    description: Annotated[str, typer.Option(help="What it covers.")] = "",
    org: Annotated[
        str | None, typer.Option(help="Whose category (default: your organisation).")
    ] = None,
) -> None:
    """Define a purpose category your organisation's agreements may allow."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            p = uc.define_purpose(ws, me, uc.DefinePurpose(name, description, org))
            console.print(f"organisation {p.org!r} now has purpose category {p.name!r}")

    guarded(run)


@org_app.command("purposes")
def org_purposes(
    ctx: typer.Context,
    org: Annotated[
        str | None, typer.Option(help="Whose categories (default: your organisation).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The purpose categories of an organisation (yours, or a partner's)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            found = uc.list_purposes(ws, me, org)
            if json_out:
                print_json(
                    [{"org": p.org, "name": p.name, "description": p.description} for p in found]
                )
                return
            if not found:
                console.print("no purpose category defined")
                return
            table = Table(title=f"purpose categories of {found[0].org}")
            for col in ("name", "description"):
                table.add_column(col)
            for p in found:
                table.add_row(p.name, p.description or "-")
            console.print(table)

    guarded(run)


# -- agreements ------------------------------------------------------------------------------


def agreement_json(a: Agreement, now: datetime | None = None) -> dict[str, Any]:
    """An agreement as ``--json`` prints it: its terms, state and history."""
    return {
        **a.to_json(),
        "state": str(a.state(now or datetime.now(UTC))),
        "created_at": format_timestamp(a.created_at),
        "created_by": a.created_by,
        "revoked_at": None if a.revoked_at is None else format_timestamp(a.revoked_at),
        "revoked_by": a.revoked_by,
    }


def _cap(value: object) -> str:
    return "-" if value is None else str(value)


def _print_agreement(a: Agreement, verb: str) -> None:
    d = agreement_json(a)
    console.print(
        f"{verb} agreement {d['agreement_id']}: {d['owner_org']} shares gallery "
        f"{d['gallery']!r} with {d['grantee_org']} at level {d['level']} ({d['state']})",
        highlight=False,
        soft_wrap=True,
    )


@agreement_app.command("create")
def agreement_create(  # noqa: PLR0913 (one parameter per option)
    ctx: typer.Context,
    gallery: Annotated[str, typer.Option(help="Your organisation's gallery to share.")],
    grantee: Annotated[str, typer.Option(help="The organisation it is shared with.")],
    purpose: Annotated[
        list[str], typer.Option("--purpose", help="Allowed purpose category (repeat).")
    ],
    legal_basis: Annotated[str, typer.Option(help="The law or instrument allowing it.")],
    starts: Annotated[str, typer.Option(help="ISO 8601 start (no zone: UTC).")],
    expires: Annotated[str, typer.Option(help="ISO 8601 expiry (no zone: UTC).")],
    level: Annotated[str, typer.Option(help=f"What it gives: {_LEVELS}.")] = "search",
    max_candidates: Annotated[
        int | None, typer.Option(help="Most leads one face may get from the gallery.")
    ] = None,
    redacted: Annotated[
        bool, typer.Option("--redacted", help="Leads name no subject until you release them.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Share a gallery your organisation owns with another organisation."""
    settings: Settings = ctx.obj

    def run() -> None:
        terms = AgreementTerms(
            gallery=gallery,
            grantee_org=grantee,
            purposes=tuple(purpose),
            legal_basis=legal_basis,
            starts_at=parse_when(starts, "--starts"),
            expires_at=parse_when(expires, "--expires"),
            level=_level(level) or GrantLevel.SEARCH,
            max_candidates=max_candidates,
            redacted=redacted,
        )
        with workspace(settings) as (ws, me):
            a = uc.create_agreement(ws, me, terms)
            if json_out:
                print_json(agreement_json(a))
            else:
                _print_agreement(a, "created")

    guarded(run)


@agreement_app.command("change")
def agreement_change(  # noqa: PLR0913 (one parameter per option)
    ctx: typer.Context,
    agreement_id: str,
    purpose: Annotated[
        list[str] | None,
        typer.Option("--purpose", help="Allowed purpose categories (repeat; replaces them)."),
    ] = None,
    legal_basis: Annotated[str | None, typer.Option()] = None,
    starts: Annotated[str | None, typer.Option(help="ISO 8601 start (no zone: UTC).")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry (no zone: UTC).")] = None,
    level: Annotated[str | None, typer.Option(help=f"What it gives: {_LEVELS}.")] = None,
    max_candidates: Annotated[int | None, typer.Option()] = None,
    no_max_candidates: Annotated[
        bool, typer.Option("--no-max-candidates", help="Drop the cap on candidates.")
    ] = False,
    redacted: Annotated[
        bool | None, typer.Option("--redacted/--not-redacted", help="Redact leads or not.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change the terms of an agreement (not its gallery or grantee); audited before/after."""
    settings: Settings = ctx.obj

    def run() -> None:
        if max_candidates is not None and no_max_candidates:
            raise InvalidArgument("give --max-candidates or --no-max-candidates, not both")
        req = uc.ChangeAgreement(
            agreement_id,
            purposes=tuple(purpose) if purpose else None,
            legal_basis=legal_basis,
            starts_at=None if starts is None else parse_when(starts, "--starts"),
            expires_at=None if expires is None else parse_when(expires, "--expires"),
            level=_level(level),
            max_candidates=max_candidates,
            clear_max_candidates=no_max_candidates,
            redacted=redacted,
        )
        if not req.changes():
            raise InvalidArgument("nothing to change: give at least one term")
        with workspace(settings) as (ws, me):
            a = uc.change_agreement(ws, me, req)
            if json_out:
                print_json(agreement_json(a))
            else:
                _print_agreement(a, "changed")

    guarded(run)


@agreement_app.command("revoke")
def agreement_revoke(
    ctx: typer.Context,
    agreement_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """End an agreement now: the grantee's next request no longer has the gallery."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            a = uc.revoke_agreement(ws, me, agreement_id, reason)
            _print_agreement(a, "revoked")

    guarded(run)


@agreement_app.command("list")
def agreement_list(
    ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """The agreements your organisation is a party to (every one for the deployment)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            now = datetime.now(UTC)
            rows = [agreement_json(a, now) for a in uc.list_agreements(ws, me)]
            if json_out:
                print_json(rows)
                return
            table = Table(title="agreements")
            for col in (
                "id",
                "gallery",
                "owner",
                "grantee",
                "level",
                "purposes",
                "expires",
                "max",
                "redacted",
                "state",
            ):
                table.add_column(col)
            for r in rows:
                table.add_row(
                    str(r["agreement_id"]),
                    str(r["gallery"]),
                    str(r["owner_org"]),
                    str(r["grantee_org"]),
                    str(r["level"]),
                    "; ".join(r["purposes"]),
                    str(r["expires_at"]),
                    _cap(r["max_candidates"]),
                    "yes" if r["redacted"] else "no",
                    str(r["state"]),
                )
            console.print(table)

    guarded(run)


@agreement_app.command("show")
def agreement_show(
    ctx: typer.Context,
    agreement_id: str,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            data = agreement_json(uc.show_agreement(ws, me, agreement_id))
            if json_out:
                print_json(data)
                return
            for k, v in data.items():
                shown = "; ".join(v) if isinstance(v, list) else ("-" if v is None else v)
                console.print(f"[bold]{k}[/]: {shown}", highlight=False)

    guarded(run)


# -- releasing redacted leads ----------------------------------------------------------------


def review_release(
    ctx: typer.Context,
    search_id: str,
    rank: int,
    note: Annotated[str, typer.Option(help="Why it may be released (required, audited).")],
) -> None:
    """Release a redacted lead of your organisation's gallery to the searcher.

    For reviewers of the gallery's owner holding view_images on it, with an account's API key.
    """
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            state = uc.release_lead(ws, me, uc.ReleaseLead(search_id, rank, note))
            seq = "" if state.release is None else f" (audit entry {state.release.audit_seq})"
            console.print(
                f"released lead #{rank} of {search_id}: {state.lead.gallery}/"
                f"{state.lead.subject_id}{seq}",
                highlight=False,
                soft_wrap=True,
            )

    guarded(run)


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(agreement_app, name="agreement")
    review_app.command("release")(review_release)
