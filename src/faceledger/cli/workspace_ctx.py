"""Opening the local workspace for a command, and who the operator is.

With an account's API key in ``FACELEDGER_API_KEY`` (or a file named by
``FACELEDGER_API_KEY_FILE``) the command acts as that account, with its roles and grants, as
the service would. Without one, the operator is a *local operator* (``--operator`` or the OS
user), recorded as ``local:<name>``: every right over the local files, but no review verdicts
(:mod:`faceledger.access.names`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from faceledger.access import User
from faceledger.access.names import canonical_name, same_person
from faceledger.config import Settings
from faceledger.errors import AuthenticationFailed, InvalidArgument, PermissionDenied
from faceledger.gallery import Workspace, local_operator, open_workspace

KEY_ENV = "FACELEDGER_API_KEY"
KEY_FILE_ENV = "FACELEDGER_API_KEY_FILE"


def operator_name(settings: Settings) -> str:
    if settings.operator:
        return canonical_name(settings.operator)
    try:
        return canonical_name(getpass.getuser())
    except (KeyError, OSError, InvalidArgument):
        return "local-operator"


def api_key(env: Mapping[str, str] = os.environ) -> str | None:
    """The API key the CLI was given, if any (never from the command line, where other
    users of the machine could read it)."""
    if env.get(KEY_ENV):
        return env[KEY_ENV].strip()
    path = env.get(KEY_FILE_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read {KEY_FILE_ENV} {path}: {exc}") from exc


def operator(ws: Workspace, settings: Settings, env: Mapping[str, str] = os.environ) -> User:
    """The account named by the API key, else the local operator."""
    token = api_key(env)
    if token is None:
        return local_operator(ws, operator_name(settings))
    try:
        user = ws.access.authenticate(token)
    except PermissionDenied:
        raise AuthenticationFailed(f"invalid or revoked API key in {KEY_ENV}") from None
    if settings.operator and not same_person(canonical_name(settings.operator), user.id):
        raise InvalidArgument(
            f"--operator {settings.operator!r} is not the account of the API key ({user.id!r})"
        )
    return user


@contextmanager
def workspace(
    settings: Settings, *, check_encryption: bool = True
) -> Iterator[tuple[Workspace, User]]:
    ws = open_workspace(settings, check_encryption=check_encryption)
    try:
        yield ws, operator(ws, settings)
    finally:
        ws.close()
