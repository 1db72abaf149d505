"""Open the one SQL database that every store-backed module shares: a SQLite file or PostgreSQL.

Also the transaction helpers and the translation of driver errors into the faceledger error
tree, so that no SQLAlchemy exception escapes a store.

SQLite is configured on every new connection:

- ``journal_mode=WAL``: readers never block the writer, and a killed process leaves a file
  that recovers on the next open.
- ``synchronous=FULL``: in WAL mode ``NORMAL`` survives a process crash (SIGKILL) but may lose
  the last commits on power loss or an OS crash; FULL syncs the WAL at each commit (one fsync,
  the same count as NORMAL's checkpoints spread out). An accountable store must not forget an
  audit entry or an erasure after reporting it done, so durability wins over write rate.
- ``foreign_keys=ON``: cascades (gallery → subjects → templates) are enforced by the database.
- ``secure_delete=ON``: deleted rows are overwritten with zeros, so erased template bytes do not
  linger in free pages (``compact()`` then also rewrites the file and truncates the WAL).
- a busy timeout, and an explicit ``BEGIN`` (``BEGIN IMMEDIATE`` for write transactions) in
  place of the ``sqlite3`` module's legacy implicit transactions, so reads are repeatable and
  concurrent writers queue instead of failing with "database is locked" on lock upgrade.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from faceledger.errors import Conflict, FaceLedgerError, InvalidArgument, StoreError

_WRITE_OPTION = "faceledger_write"


def open_database(url: str, *, busy_timeout_s: float = 30.0) -> sa.Engine:
    """An engine for ``url``: a file path, ``sqlite:///path`` or ``postgresql://...``.

    ``postgresql://`` and ``postgres://`` are served by psycopg 3. SQLite's parent folder is
    created if missing. Connections are made lazily; the first failure surfaces as a
    :class:`StoreError` from the first operation.
    """
    if busy_timeout_s <= 0:
        raise InvalidArgument("busy_timeout_s must be positive")
    target = url.strip()
    if not target:
        raise InvalidArgument("empty database URL")
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if target.startswith(prefix):
            rest = target[len(prefix) :]
            # pre-ping: a pooled connection that died with a server restart is replaced, not
            # handed to a request (which would fail with store_error after the server is back)
            return _create_engine(sa_url("postgresql+psycopg://" + rest), pool_pre_ping=True)
    if target.startswith("sqlite:///"):
        path = Path(target[len("sqlite:///") :])
    elif target in ("sqlite://", "sqlite:///:memory:", ":memory:"):
        raise InvalidArgument("in-memory SQLite is not supported: give a database file path")
    elif "://" in target:
        scheme = target.split("://", 1)[0]
        raise InvalidArgument(f"unsupported database URL scheme {scheme!r}")
    else:
        path = Path(target)
    return _open_sqlite(path.expanduser(), busy_timeout_s)


def sa_url(url: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except sa_exc.ArgumentError as exc:
        raise InvalidArgument(f"malformed database URL: {exc}") from None


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: sa.Engine) -> Path:
    """The database file of a SQLite engine (its WAL is the same path plus ``-wal``)."""
    if not is_sqlite(engine) or not engine.url.database:
        raise InvalidArgument("not a SQLite file database")
    return Path(engine.url.database)


@contextmanager
def write_transaction(engine: sa.Engine, *, lock: str | None = None) -> Iterator[sa.Connection]:
    """A connection inside a write transaction, committed on exit, rolled back on error.

    On SQLite this is ``BEGIN IMMEDIATE``: writers are serialised for the whole transaction, so
    read-then-write logic (e.g. appending to a hash chain) sees the latest state. On PostgreSQL
    pass ``lock`` (any string) to take a transaction-scoped advisory lock of that name, which
    gives the same serialisation among writers that use the same name.
    """
    with translate_errors("write"), engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            if lock is not None and not is_sqlite(engine):
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
                    {"name": lock},
                )
            yield conn


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside a read transaction (a consistent snapshot on SQLite)."""
    with translate_errors("read"), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise driver and SQLAlchemy errors as faceledger errors (cause kept for debugging)."""
    try:
        yield
    except FaceLedgerError:
        raise
    except sa_exc.IntegrityError as exc:
        raise Conflict(f"{action}: {_reason(exc)}") from exc
    except sa_exc.OperationalError as exc:
        raise StoreError(f"{action}: database unavailable or busy: {_reason(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError(f"{action}: {_reason(exc)}") from exc
    except sqlite3.Error as exc:  # raised directly by raw connections (compaction)
        raise StoreError(f"{action}: {exc}") from exc


def _reason(exc: sa_exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _create_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise InvalidArgument(f"cannot open database {url.render_as_string()}: {exc}") from None


def _open_sqlite(path: Path, busy_timeout_s: float) -> sa.Engine:
    if path.is_dir():
        raise InvalidArgument(f"database path {path} is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of database {path}: {exc}") from None
    engine = _create_engine(
        sa.URL.create("sqlite", database=str(path)),
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module (see _begin)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{path}: cannot switch SQLite to WAL mode (got {mode!r})")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA secure_delete = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION) else "BEGIN")

    return engine
