"""Per-deployment secrets kept in the store, shared by every process using it.

A keyed hash recorded in the audit log (a document number, say) must be the same whichever
service node or command wrote it, so that an investigator holding the number can find its
entries, and must not be computable by someone who reads only the audit log. The key therefore
lives in the store (``store_meta``), created at random on first use: every process on the same
database uses the same key, and the audit log never contains it.
"""

from __future__ import annotations

import hmac
import secrets

import sqlalchemy as sa

from faceledger.errors import InvalidArgument, StoreError
from faceledger.store.database import read_transaction, write_transaction
from faceledger.store.schema import store_meta

KEY_BYTES = 32


def deployment_secret(engine: sa.Engine, name: str) -> bytes:
    """The secret called ``name`` (created at random on first use; the same thereafter)."""
    if not name.isidentifier():
        raise InvalidArgument(f"secret names are identifiers, not {name!r}")
    key = f"secret:{name}"
    with read_transaction(engine) as conn:
        found = _get(conn, key)
    if found is not None:
        return found
    with write_transaction(engine, lock=key) as conn:
        found = _get(conn, key)  # another process may have created it meanwhile
        if found is None:
            value = secrets.token_bytes(KEY_BYTES)
            conn.execute(store_meta.insert().values(key=key, value=value.hex()))
            return value
        return found


def keyed_hash(engine: sa.Engine, name: str, text: str) -> str:
    """HMAC-SHA256 of ``text`` under the deployment secret ``name``, hex."""
    digest = hmac.new(deployment_secret(engine, name), text.encode("utf-8"), "sha256")
    return digest.hexdigest()


def _get(conn: sa.Connection, key: str) -> bytes | None:
    value = conn.execute(
        sa.select(store_meta.c.value).where(store_meta.c.key == key)
    ).scalar_one_or_none()
    if value is None:
        return None
    try:
        raw = bytes.fromhex(str(value))
    except ValueError as exc:
        raise StoreError(f"the store's {key!r} is not a hex secret") from exc
    if len(raw) != KEY_BYTES:
        raise StoreError(f"the store's {key!r} has {len(raw)} bytes, not {KEY_BYTES}")
    return raw
