"""Small SQL helpers shared by the audit, access and review tables: schema creation that
tolerates concurrent creators, and translation of driver errors into the faceledger tree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from faceledger.errors import Conflict, FaceLedgerError, StoreError


def create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create the tables of ``metadata`` that are missing.

    Two processes opening a fresh database at once may both decide to create a table; the
    loser's error is retried, after which the table exists.
    """
    for attempt in range(5):
        try:
            with translate_errors("create tables"):
                metadata.create_all(engine, checkfirst=True)
            return
        except StoreError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as :class:`StoreError` (cause kept)."""
    try:
        yield
    except FaceLedgerError:
        raise
    except sa_exc.IntegrityError as exc:
        raise Conflict(f"{action}: {reason(exc)}") from exc
    except sa_exc.OperationalError as exc:
        raise StoreError(f"{action}: database unavailable or busy: {reason(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StoreError(f"{action}: {reason(exc)}") from exc


def reason(exc: sa_exc.SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked/busy" (a lock wait that ran out of time)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, sa_exc.OperationalError) and ("locked" in text or "busy" in text)
