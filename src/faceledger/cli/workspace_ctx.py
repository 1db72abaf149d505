"""Opening the local workspace for a command, and who the operator is."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

from faceledger.access import User
from faceledger.config import Settings
from faceledger.gallery import Workspace, local_operator, open_workspace


def operator_name(settings: Settings) -> str:
    if settings.operator:
        return settings.operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local-operator"


@contextmanager
def workspace(
    settings: Settings, *, check_encryption: bool = True
) -> Iterator[tuple[Workspace, User]]:
    ws = open_workspace(settings, check_encryption=check_encryption)
    try:
        yield ws, local_operator(ws, operator_name(settings))
    finally:
        ws.close()
