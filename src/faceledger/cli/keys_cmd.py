"""``faceledger keys``: create the keys that encrypt templates and sign the audit log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from faceledger.audit import generate_signing_key, public_key_hex, signing_key_pem
from faceledger.cli.output import console, guarded
from faceledger.cli.workspace_ctx import workspace
from faceledger.config import Settings
from faceledger.errors import Conflict
from faceledger.store import generate_key

keys_app = typer.Typer(help="Create keys; encrypt existing templates.", no_args_is_help=True)


def _write_secret(path: Path, data: bytes) -> None:
    if path.exists():
        raise Conflict(f"{path} exists; refusing to overwrite a key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


@keys_app.command("template")
def template_key(
    out: Annotated[Path, typer.Argument(help="Key file to create (mode 600).")],
) -> None:
    """A 256-bit AES-GCM key; set FACELEDGER_TEMPLATE_KEY to its path to encrypt templates."""
    guarded(lambda: _write_secret(out, generate_key().hex().encode() + b"\n"))
    console.print(f"wrote {out}; keep a copy: templates encrypted with it are lost without it")


@keys_app.command("audit")
def audit_key(out: Annotated[Path, typer.Argument(help="PEM file to create (mode 600).")]) -> None:
    """An Ed25519 key; set FACELEDGER_AUDIT_SIGNING_KEY to its path to sign every entry."""
    key = generate_signing_key()
    guarded(lambda: _write_secret(out, signing_key_pem(key)))
    console.print(
        f"wrote {out}; public key (give it to auditors): {public_key_hex(key.public_key())}"
    )


@keys_app.command("encrypt-existing")
def encrypt_existing(ctx: typer.Context) -> None:
    """Encrypt templates stored before a template key was configured."""
    settings: Settings = ctx.obj

    def run() -> None:
        with workspace(settings, check_encryption=False) as (ws, _):
            n = ws.store.encrypt_stored_templates()
            ws.store.check_encryption()
            ws.store.compact()
            console.print(f"encrypted {n} template(s); database compacted")

    guarded(run)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
