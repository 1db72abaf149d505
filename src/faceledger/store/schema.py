"""The metadata store's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Other modules may define their own tables on the same engine and point foreign keys at these
(``ForeignKey(schema.subjects.c.id)``); :func:`create_schema` only creates this module's tables.

The schema has a version (``store_meta.schema_version``). A database of an older version is
migrated in place when it is opened (:data:`MIGRATIONS`, each step in the same transaction as
the version it writes); one of a newer version, written by a later faceledger, is refused.

- version 1: the first release.
- version 2: ``galleries.retention_hours`` (a retention period in hours; a gallery has one in
  days or in hours, never both).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from faceledger.errors import InvalidArgument, StoreError
from faceledger.store.database import translate_errors, write_transaction
from faceledger.store.records import ItemStatus, LegalBasis

SCHEMA_VERSION = "2"
_SCHEMA_LOCK = "faceledger-store-schema"
"""PostgreSQL advisory lock serialising schema creation and migration among openers."""

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite stores them as naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidArgument("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise StoreError(f"unexpected timestamp value {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# 64-bit ids; on SQLite an INTEGER PRIMARY KEY (the rowid, also 64-bit), with AUTOINCREMENT so
# that ids are never reused after deletion: a stale id left in a vector index must never name a
# different, newer template.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON(none_as_null=True)

_BASES = ", ".join(f"'{b.value}'" for b in LegalBasis)
_HOURS_CHECK = "retention_hours IS NULL OR retention_hours > 0"
_ONE_UNIT_CHECK = "retention_days IS NULL OR retention_hours IS NULL"
_STATUSES = ", ".join(f"'{s.value}'" for s in ItemStatus)

store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

galleries = sa.Table(
    "galleries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("model_id", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("retention_days", sa.Integer, nullable=True),
    sa.Column("legal_basis", sa.String(16), nullable=False),
    sa.Column("index_description", Json, nullable=False),
    sa.CheckConstraint(f"legal_basis IN ({_BASES})", name="legal_basis"),
    sa.CheckConstraint("retention_days IS NULL OR retention_days > 0", name="retention"),
    # version 2; a migrated version-1 database gets the same two constraints (_to_version_2)
    sa.Column("retention_hours", sa.Integer, nullable=True),
    sa.CheckConstraint(_HOURS_CHECK, name="retention_hours"),
    sa.CheckConstraint(_ONE_UNIT_CHECK, name="one_retention_unit"),
    sqlite_autoincrement=True,
)

gallery_generations = sa.Table(
    "gallery_generations",
    metadata,
    sa.Column("gallery_id", BigId, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)
"""How many times each gallery's templates have changed: bumped in the transaction of every
insert or delete, so that a process holding an index of the gallery (another replica of the
service, or the CLI beside it) knows with one lookup whether to reconcile it with the store.
No row: never changed (0). A table of its own, so older databases gain it unchanged."""

subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "gallery_id",
        BigId,
        sa.ForeignKey(galleries.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("external_id", sa.String(200), nullable=False),
    sa.Column("display_name", sa.String(400), nullable=True),
    sa.Column("attributes", Json, nullable=False),
    sa.Column("legal_basis", sa.String(16), nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("enrolled_at", UtcDateTime, nullable=False),
    sa.Column("enrolled_by", sa.String(200), nullable=False),
    sa.UniqueConstraint("gallery_id", "external_id"),
    # target of templates' composite foreign key: a template's gallery is its subject's
    sa.UniqueConstraint("id", "gallery_id"),
    sa.CheckConstraint(f"legal_basis IN ({_BASES})", name="legal_basis"),
    sa.Index(None, "enrolled_at"),
    sqlite_autoincrement=True,
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("subject_id", BigId, nullable=False),
    sa.Column("gallery_id", BigId, nullable=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Column("quality_score", sa.Float, nullable=True),
    sa.Column("quality", Json, nullable=True),
    sa.Column("model_id", sa.String(100), nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    # fingerprint of the key that encrypted ``vector``; NULL when stored in the clear
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["subject_id", "gallery_id"],
        [subjects.c.id, subjects.c.gallery_id],
        ondelete="CASCADE",
    ),
    sa.UniqueConstraint("gallery_id", "image_sha256"),
    sa.Index(None, "gallery_id", "id"),
    sa.Index(None, "subject_id"),
    sa.CheckConstraint("dimension > 0", name="dimension"),
    sqlite_autoincrement=True,
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "gallery_id",
        BigId,
        sa.ForeignKey(galleries.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("started_by", sa.String(200), nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Index(None, "gallery_id", "source"),
    sqlite_autoincrement=True,
)

job_items = sa.Table(
    "job_items",
    metadata,
    sa.Column(
        "job_id",
        BigId,
        sa.ForeignKey(jobs.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("item_key", sa.Text, primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    # SET NULL: deleting a template keeps the record that the item was handled, so resuming
    # the job does not re-enrol an erased subject.
    sa.Column(
        "template_id",
        BigId,
        sa.ForeignKey(templates.c.id, ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    sa.Index(None, "template_id"),
)


def create_schema(engine: sa.Engine) -> None:
    """Create the store's tables if missing, migrate a database of an older schema version,
    refuse one of a newer version.

    Two processes opening a fresh database at once may both try to create a table; the loser
    retries, after which the table exists. The version is then read, and any migration run,
    in one write transaction that serialises openers (``BEGIN IMMEDIATE`` on SQLite, an
    advisory lock on PostgreSQL): a second opener waits, then finds the new version and does
    nothing. A migration that fails rolls back whole, leaving the old version to retry.
    """
    for attempt in range(5):
        try:
            with translate_errors("create schema"):
                metadata.create_all(engine, checkfirst=True)
            break
        except StoreError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    with write_transaction(engine, lock=_SCHEMA_LOCK) as conn:
        found = conn.execute(
            sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")
        ).scalar_one_or_none()
        if found is None:
            conn.execute(store_meta.insert().values(key="schema_version", value=SCHEMA_VERSION))
            return
        while found != SCHEMA_VERSION:
            step = MIGRATIONS.get(found)
            if step is None:
                raise StoreError(
                    f"the database has store schema version {found}; "
                    f"this faceledger expects version {SCHEMA_VERSION}"
                )
            found = step(conn)
            conn.execute(
                store_meta.update().where(store_meta.c.key == "schema_version").values(value=found)
            )


def _to_version_2(conn: sa.Connection) -> str:
    """Add ``galleries.retention_hours`` with the constraints a fresh version-2 table has.

    Both dialects get the CHECK constraints with the column, so the database keeps refusing
    a zero period or two units whatever writes to it: SQLite accepts them on ``ADD COLUMN`` as
    column constraints (which may name other columns there; the existing rows, all NULL in
    the new column, pass them), PostgreSQL as table constraints. Names follow the metadata's
    naming convention, so a migrated table and a fresh one are alike.
    """
    hours = f"CONSTRAINT ck_galleries_retention_hours CHECK ({_HOURS_CHECK})"
    one_unit = f"CONSTRAINT ck_galleries_one_retention_unit CHECK ({_ONE_UNIT_CHECK})"
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            f"ALTER TABLE galleries ADD COLUMN retention_hours INTEGER {hours} {one_unit}"
        )
    else:
        conn.exec_driver_sql(
            f"ALTER TABLE galleries ADD COLUMN retention_hours INTEGER, ADD {hours}, ADD {one_unit}"
        )
    return "2"


MIGRATIONS: dict[str, Callable[[sa.Connection], str]] = {"1": _to_version_2}
"""Schema version → the step that migrates a database of that version, returning the version
it leaves; applied one after another up to :data:`SCHEMA_VERSION`."""
