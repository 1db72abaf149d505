"""open_database: URL forms, SQLite connection settings, transactions and error translation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceledger.errors import Conflict, InvalidArgument, StoreError
from faceledger.store.database import (
    open_database,
    read_transaction,
    sqlite_path,
    translate_errors,
    write_transaction,
)


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    engine = open_database(str(tmp_path / "nested" / "store.db"), busy_timeout_s=12.5)
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "secure_delete")
            }
            busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "foreign_keys": 1,
            "secure_delete": 1,
        }
        assert busy == 12500
        assert sqlite_path(engine) == tmp_path / "nested" / "store.db"
        assert sqlite_path(engine).is_file()
    finally:
        engine.dispose()


def test_url_forms(tmp_path: Path) -> None:
    e = open_database(f"sqlite:///{tmp_path}/a.db")
    assert e.dialect.name == "sqlite" and sqlite_path(e) == tmp_path / "a.db"
    e.dispose()
    for url in (
        "postgresql://u:p@db.example/faceledger",
        "postgres://u:p@db.example/faceledger",
        "postgresql+psycopg://u:p@db.example/faceledger",
    ):
        pg = open_database(url)  # lazy: nothing is contacted here
        assert pg.url.drivername == "postgresql+psycopg"
        assert pg.url.database == "faceledger" and pg.url.host == "db.example"
    for bad in ("", "   ", "sqlite://", ":memory:", "mysql://x/y", "postgresql+asyncpg://x/y"):
        with pytest.raises(InvalidArgument):
            open_database(bad)
    with pytest.raises(InvalidArgument, match="folder"):
        open_database(str(tmp_path))
    with pytest.raises(InvalidArgument):
        open_database(str(tmp_path / "x.db"), busy_timeout_s=0)


def test_read_transactions_see_one_snapshot(tmp_path: Path) -> None:
    # the sqlite3 module's legacy mode would not BEGIN before a SELECT: each read would see
    # the latest commit. Our explicit BEGIN makes a read transaction repeatable.
    engine = open_database(str(tmp_path / "s.db"))
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("x", sa.Integer))
    meta.create_all(engine)
    try:
        with read_transaction(engine) as reader:
            assert reader.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0
            with write_transaction(engine) as writer:
                writer.execute(t.insert().values(x=1))
            assert reader.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0
        with read_transaction(engine) as again:
            assert again.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 1
    finally:
        engine.dispose()


def test_write_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    engine = open_database(str(tmp_path / "w.db"))
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("x", sa.Integer, unique=True))
    meta.create_all(engine)
    try:
        with pytest.raises(RuntimeError), write_transaction(engine) as conn:
            conn.execute(t.insert().values(x=1))
            raise RuntimeError("boom")
        with pytest.raises(Conflict, match="UNIQUE"), write_transaction(engine) as conn:
            conn.execute(t.insert().values(x=2))
            conn.execute(t.insert().values(x=2))
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 0
    finally:
        engine.dispose()


def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    engine = open_database(str(tmp_path / "e.db"))
    try:
        with (
            pytest.raises(StoreError, match="no such table") as info,
            translate_errors("query"),
            engine.connect() as conn,
        ):
            conn.exec_driver_sql("SELECT * FROM missing")
        assert not isinstance(info.value, sa.exc.SQLAlchemyError)
    finally:
        engine.dispose()


def test_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    engine = open_database(str(tmp_path / "busy.db"))
    meta = sa.MetaData()
    t = sa.Table("t", meta, sa.Column("x", sa.Integer))
    meta.create_all(engine)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with write_transaction(engine) as conn:
            conn.execute(t.insert().values(x=1))
            holding.set()
            release.wait(10)

    th = threading.Thread(target=hold_the_lock)
    th.start()
    try:
        assert holding.wait(10)
        threading.Timer(0.3, release.set).start()
        with write_transaction(engine) as conn:  # blocks ~0.3 s on the lock, then proceeds
            conn.execute(t.insert().values(x=2))
    finally:
        release.set()
        th.join()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 2
    engine.dispose()
