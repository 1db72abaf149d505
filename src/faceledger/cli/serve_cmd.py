"""``faceledger serve`` (the REST service and review UI) and ``faceledger users`` (accounts,
API keys and grants for it).

Whoever can open the database file already holds every right over it, so ``users`` acts as
the local operator (audited under that name); the very first user is created without one and
must be an administrator.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from faceledger.access import GrantLevel, Role
from faceledger.cli.output import console, err_console, guarded, print_json
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings

users_app = typer.Typer(
    help="Users, API keys and gallery grants of the service.", no_args_is_help=True
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    keep_images: Annotated[
        bool, typer.Option(help="Keep enrolled images for reviewers (erased with the subject).")
    ] = True,
    keep_probes: Annotated[
        bool, typer.Option(help="Keep each search's probe image for its reviewers.")
    ] = True,
    max_request_mb: Annotated[int, typer.Option(min=1, help="Largest request body.")] = 64,
    reports_dir: Annotated[
        Path | None, typer.Option(help="Evaluation reports to serve (default <data-dir>/reports).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    retention_interval: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds between the service's own retention runs "
            "(0: none; then schedule `faceledger retention apply`).",
        ),
    ] = 300,
) -> None:
    """Run the REST API (/api/v1) and the review UI (/ui/) in one process."""
    import uvicorn

    from faceledger.api import ServiceOptions, create_app

    settings: Settings = ctx.obj
    if not _is_loopback(host):
        err_console.print(
            f"[yellow]warning[/]: listening on {host}: put a TLS-terminating proxy in front; "
            "API keys travel in every request"
        )
    options = ServiceOptions(
        keep_images=keep_images,
        keep_probes=keep_probes,
        max_request_bytes=max_request_mb * 1024 * 1024,
        reports_dir=reports_dir,
        retention_interval_s=retention_interval or None,
    )
    app = guarded(lambda: create_app(settings, options=options))
    if not app.state.service.ws.access.users():
        err_console.print(
            "[yellow]no users yet[/]: create the first administrator with "
            "`faceledger users create NAME --role admin --key`"
        )
    console.print(f"faceledger service on http://{host}:{port}/ui/ (API: /api/v1)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


@users_app.command("create")
def users_create(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -).")],
    role: Annotated[list[Role], typer.Option("--role", help="Role (repeat for several).")],
    display_name: Annotated[str, typer.Option()] = "",
    key: Annotated[bool, typer.Option("--key", help="Also issue an API key and print it.")] = False,
    org: Annotated[
        str | None,
        typer.Option(help="The user's organisation (default: your own; 'default' locally)."),
    ] = None,
) -> None:
    """Add a user; the first user of a workspace must be an admin (or an operator)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            first = not ws.access.users()
            user = ws.access.create_user(
                user_id, role, by=None if first else me, display_name=display_name, org=org
            )
            console.print(
                f"created user {user.id!r} of organisation {user.org!r} with roles "
                f"{', '.join(sorted(user.roles))}"
            )
            if key:
                by = user if first else me
                issued = ws.access.issue_api_key(user.id, by=by, label="created with the user")
                console.print(f"API key (shown once): {issued.token}")

    guarded(run)


@users_app.command("list")
def users_list(
    ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            users = ws.access.managed_users(me)
            keys = {
                u.id: [k.key_id for k in ws.access.api_keys(u.id) if k.revoked_at is None]
                for u in users
            }
            if json_out:
                print_json(
                    [
                        {
                            "id": u.id,
                            "org": u.org,
                            "roles": sorted(u.roles),
                            "grants": dict(sorted(u.grants.items())),
                            "active": u.active,
                            "keys": keys[u.id],
                        }
                        for u in users
                    ]
                )
                return
            table = Table(title="users")
            for col in ("id", "org", "roles", "grants", "active", "active keys"):
                table.add_column(col)
            for u in users:
                grants = ", ".join(f"{g}={lv}" for g, lv in sorted(u.grants.items()))
                table.add_row(
                    u.id,
                    u.org or "-",
                    ", ".join(sorted(u.roles)),
                    grants or "-",
                    "yes" if u.active else "no",
                    ", ".join(keys[u.id]) or "-",
                )
            console.print(table)

    guarded(run)


@users_app.command("issue-key")
def users_issue_key(
    ctx: typer.Context,
    user_id: str,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Issue an API key; the token is printed once and only its hash is stored."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            issued = ws.access.issue_api_key(user_id, by=me, label=label)
            console.print(f"API key for {user_id} (shown once): {issued.token}")

    guarded(run)


@users_app.command("revoke-key")
def users_revoke_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key (a running service stops accepting it within seconds)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            ws.access.revoke_api_key(key_id, by=me)
            console.print(f"revoked key {key_id}")

    guarded(run)


@users_app.command("grant")
def users_grant(
    ctx: typer.Context,
    user_id: str,
    gallery: str,
    level: Annotated[GrantLevel, typer.Argument(help="search, view_images or enrol.")],
) -> None:
    """Give a user a level on a gallery (replacing the one they had)."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            ws.store.get_gallery_by_name(gallery)
            ws.access.grant(user_id, gallery, level, by=me)
            console.print(f"{user_id} now holds {level} on {gallery}")

    guarded(run)


def _set_active(ctx: typer.Context, user_id: str, active: bool) -> None:
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings) as (ws, me):
            change = ws.access.reactivate if active else ws.access.deactivate
            change(user_id, by=me)
            console.print(f"{'reactivated' if active else 'deactivated'} {user_id}")

    guarded(run)


@users_app.command("deactivate")
def users_deactivate(ctx: typer.Context, user_id: str) -> None:
    """Refuse every further request of a user (their history stays)."""
    _set_active(ctx, user_id, False)


@users_app.command("reactivate")
def users_reactivate(ctx: typer.Context, user_id: str) -> None:
    """Let a deactivated user make requests again (keys and grants as they were)."""
    _set_active(ctx, user_id, True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(users_app, name="users")
