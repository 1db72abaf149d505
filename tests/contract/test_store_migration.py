"""A store of schema version 1 opened by this faceledger: migrated in place, once, data intact.

The version-1 ``galleries`` table is written out here as it was (frozen, not derived from the
current code), the other tables are today's (unchanged since version 1); both run on a real
SQLite file and on the session's PostgreSQL server (``db_engine``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from faceledger.errors import Conflict, StoreError
from faceledger.store import SqlStore, write_transaction
from faceledger.store import schema as current
from faceledger.store.schema import SCHEMA_VERSION, galleries, store_meta, subjects, templates

V1 = sa.MetaData(naming_convention=current.metadata.naming_convention)
V1_GALLERIES = sa.Table(
    "galleries",
    V1,
    sa.Column("id", current.BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("model_id", sa.String(100), nullable=False),
    sa.Column("created_at", current.UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("retention_days", sa.Integer, nullable=True),
    sa.Column("legal_basis", sa.String(16), nullable=False),
    sa.Column("index_description", current.Json, nullable=False),
    sa.CheckConstraint(
        "legal_basis IN ('consent', 'statute', 'warrant', 'other')", name="legal_basis"
    ),
    sa.CheckConstraint("retention_days IS NULL OR retention_days > 0", name="retention"),
    sqlite_autoincrement=True,
)
ENROLLED = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
VECTOR = np.array([0.5, -0.25, 0.125, 1.0], dtype=np.float32)


def make_version_1(engine: sa.Engine) -> None:
    """A database as a version-1 faceledger left it: one gallery (30 days), one subject, one
    template."""
    V1.create_all(engine)
    others = [t for t in current.metadata.sorted_tables if t.name != "galleries"]
    current.metadata.create_all(engine, tables=others)
    with write_transaction(engine) as conn:
        conn.execute(store_meta.insert().values(key="schema_version", value="1"))
        gid = conn.execute(
            V1_GALLERIES.insert()
            .values(
                name="custody",
                description="arrests",
                model_id="m",
                created_at=ENROLLED,
                created_by="admin",
                retention_days=30,
                legal_basis="statute",
                index_description={"backend": "exact"},
            )
            .returning(V1_GALLERIES.c.id)
        ).scalar_one()
        sid = conn.execute(
            subjects.insert()
            .values(
                gallery_id=gid,
                external_id="A-1",
                attributes={},
                legal_basis="statute",
                enrolled_at=ENROLLED,
                enrolled_by="enroller",
            )
            .returning(subjects.c.id)
        ).scalar_one()
        conn.execute(
            templates.insert().values(
                subject_id=sid,
                gallery_id=gid,
                image_sha256="a" * 64,
                model_id="m",
                dimension=4,
                vector=VECTOR.astype("<f4").tobytes(),
                created_at=ENROLLED,
            )
        )


def version(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")
            ).scalar_one()
        )


def test_a_version_1_store_is_migrated_with_its_data_and_takes_hours(
    db_engine: sa.Engine,
) -> None:
    make_version_1(db_engine)
    assert "retention_hours" not in {
        c["name"] for c in sa.inspect(db_engine).get_columns("galleries")
    }
    store = SqlStore(db_engine)
    assert version(db_engine) == SCHEMA_VERSION == "2"
    old = store.get_gallery_by_name("custody")
    assert (old.retention_days, old.retention_hours, old.description) == (30, None, "arrests")
    assert old.index_description == {"backend": "exact"}
    (subject,) = store.list_subjects(old.id).items
    assert (subject.external_id, subject.enrolled_at) == ("A-1", ENROLLED)
    (tpl,) = store.get_templates(store.template_ids(old.id)).values()
    assert np.array_equal(tpl.vector, VECTOR)

    flight = store.create_gallery(
        "flight LX-318", model_id="m", created_by="admin", legal_basis="statute",
        retention_hours=12,
    )  # fmt: skip
    assert flight.retention_hours == 12 and store.get_gallery(flight.id) == flight
    assert store.update_gallery(old.id, retention_hours=6).retention_days is None
    # the migrated table holds the same constraints as a fresh one, on both dialects
    for bad in ({"retention_days": 1, "retention_hours": 1}, {"retention_hours": 0}):
        with pytest.raises(Conflict), write_transaction(db_engine) as conn:
            conn.execute(galleries.update().where(galleries.c.id == flight.id).values(**bad))
    assert store.get_gallery(flight.id) == flight
    SqlStore(db_engine)  # opening again finds version 2: nothing left to do
    assert version(db_engine) == "2"


def test_concurrent_openers_migrate_once(db_engine: sa.Engine) -> None:
    make_version_1(db_engine)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            SqlStore(db_engine)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert version(db_engine) == "2"
    names = [c["name"] for c in sa.inspect(db_engine).get_columns("galleries")]
    assert names.count("retention_hours") == 1


def test_a_store_of_an_unknown_version_is_refused_and_left_alone(db_engine: sa.Engine) -> None:
    make_version_1(db_engine)
    with write_transaction(db_engine) as conn:
        conn.execute(store_meta.update().values(value="3"))
    with pytest.raises(StoreError, match="schema version 3; this faceledger expects version 2"):
        SqlStore(db_engine)
    assert "retention_hours" not in {
        c["name"] for c in sa.inspect(db_engine).get_columns("galleries")
    }
