"""The audit log's own tables (SQLite and PostgreSQL alike) and its append-only guards.

``audit_entries`` holds one row per entry: the canonical body (what is hashed) and, for
queries, copies of its time, actor and operation, which verification checks against the body.
``audit_head`` holds one row (id 1): the last seq and hash, signed when a key is configured;
appenders lock this row, which serialises appends on both databases.
The database refuses UPDATE and DELETE on ``audit_entries`` (triggers created with the table):
not a defence against the database's owner, which is what the hash chain is for, but a guard
against accidents and against code paths that should never touch the log.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("operation", sa.String(64), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=True),
    sa.Index("ix_audit_entries_ts", "ts"),
    sa.Index("ix_audit_entries_operation_ts", "operation", "ts"),
)  # fmt: skip

scopes = sa.Table(
    "audit_scopes",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Index("ix_audit_scopes_scope", "scope", "seq"),
)  # fmt: skip
"""Which organisations each entry concerns (written with the entry, in its transaction): an
index for each organisation's auditors, derived from the entry, not part of what is hashed.
Entries with no row here (written before organisations existed) are the default one's."""

head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=True),
    sa.Column("signer", sa.String(64), nullable=True),
)

HEAD_ID = 1

access_epoch = sa.Table(
    "audit_access_epoch",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
)
"""One row (id :data:`HEAD_ID`): how many audited changes of access there have been
(``ACCESS_OPS``), moved with the entry that records each; no row: none yet."""

_SQLITE_GUARDS = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
)
_POSTGRES_GUARDS = (
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_entries is append-only'; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
    "CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
)
GUARD_DROPS = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS audit_entries_no_update",
        "DROP TRIGGER IF EXISTS audit_entries_no_delete",
    ),
    "postgresql": (
        "DROP TRIGGER IF EXISTS audit_entries_no_change ON audit_entries",
        "DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries",
    ),
}
"""Statements that remove the guards (what an attacker with owner rights would run; tests)."""

for _dialect, _statements in (("sqlite", _SQLITE_GUARDS), ("postgresql", _POSTGRES_GUARDS)):
    for _statement in _statements:
        _ddl = sa.DDL(_statement)  # type: ignore[no-untyped-call]
        sa.event.listen(entries, "after_create", _ddl.execute_if(dialect=_dialect))
