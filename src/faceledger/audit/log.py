"""The append-only, hash-chained audit log on a SQLAlchemy engine (SQLite or PostgreSQL).

Appends are serialised by locking the single ``audit_head`` row as the *first* statement of
the write transaction: on PostgreSQL that is a row lock; on SQLite the first write of a
transaction takes the database's write lock, which is what ``BEGIN IMMEDIATE`` would do, but
it works whatever transaction hooks the engine was configured with. So concurrent threads and
processes queue and the chain never forks.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import exc as sa_exc

from faceledger.audit import schema
from faceledger.audit.canonical import canonical_json, parse_json
from faceledger.audit.chain import ChainWalker, Problem, StoredRow, chain_hash, entry_from_row
from faceledger.audit.records import (
    ACCESS_OPS,
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    ChainHead,
    VerifyReport,
    format_timestamp,
    parse_timestamp,
)
from faceledger.audit.report import build_report
from faceledger.audit.signing import (
    entry_signature_ok,
    public_key_hex,
    sign_entry,
    sign_head,
)
from faceledger.audit.sqlutil import create_tables, is_busy, translate_errors
from faceledger.errors import ChainBroken, InvalidArgument, NotFound

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (injected so tests control time)."""

Scoper = Callable[[sa.Connection, AuditRecord], Iterable[str]]
"""Names the scopes (organisations) an entry concerns, on the append's connection."""

_LOCKED = "faceledger_audit_locked"
_PAGE = 1000
_LOCK_WAIT_S = 120.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Append, read, export and verify the audit chain stored on ``engine``."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Clock = utc_now,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._key = signing_key
        self._signer = None if signing_key is None else public_key_hex(signing_key.public_key())
        self.scoper: Scoper | None = None
        """Names the organisations an entry concerns (installed by ``access.orgs``)."""
        self.default_scope: str | None = None
        """The scope of entries indexed under none (written before scopes existed)."""
        create_tables(engine, schema.metadata)
        self._ensure_head()

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @property
    def signer(self) -> str | None:
        """Hex public key that signs new entries, or None."""
        return self._signer

    def now(self) -> datetime:
        """The injected clock's time (UTC); other modules time-stamp their rows with it."""
        moment = self._clock()
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidArgument("the audit clock must return timezone-aware datetimes")
        return moment.astimezone(UTC)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction holding the append lock, committed on exit.

        Write your own rows on the connection and pass it to :meth:`append`, so that the
        change and its audit entry commit together or not at all.
        """
        with translate_errors("audit write"), self._engine.connect() as conn, conn.begin():
            self._lock(conn)
            conn.info[_LOCKED] = True
            try:
                yield conn
            finally:
                conn.info.pop(_LOCKED, None)

    def append(self, record: AuditRecord, *, connection: sa.Connection | None = None) -> AuditEntry:
        """Add ``record`` as the next entry; ``connection`` must come from :meth:`writing`."""
        if not isinstance(record, AuditRecord):
            raise InvalidArgument("append() takes an AuditRecord")
        if connection is None:
            with self.writing() as conn:
                return self._append_locked(conn, record)
        if not connection.info.get(_LOCKED):
            raise InvalidArgument("append(connection=...) needs a connection from writing()")
        with translate_errors("audit append"):
            return self._append_locked(connection, record)

    def access_epoch(self) -> int:
        """How many audited changes of access (roles, grants, keys, agreements...) were
        committed, by any process: a process that remembers signed-in users forgets them when
        this moves (one lookup)."""
        t = schema.access_epoch
        with translate_errors("audit read"), self._engine.connect() as conn:
            found = conn.execute(
                sa.select(t.c.epoch).where(t.c.id == schema.HEAD_ID)
            ).scalar_one_or_none()
            conn.rollback()
        return 0 if found is None else int(found)

    @staticmethod
    def _bump_access_epoch(conn: sa.Connection) -> None:
        """Under the append lock (one writer at a time), so read-then-write is safe."""
        t = schema.access_epoch
        moved = conn.execute(
            sa.update(t).where(t.c.id == schema.HEAD_ID).values(epoch=t.c.epoch + 1)
        )
        if moved.rowcount == 0:
            conn.execute(sa.insert(t).values(id=schema.HEAD_ID, epoch=1))

    def _lock(self, conn: sa.Connection) -> None:
        statement = (
            sa.update(schema.head)
            .where(schema.head.c.id == schema.HEAD_ID)
            .values(seq=schema.head.c.seq)
        )
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                result = conn.execute(statement)
                break
            except sa_exc.OperationalError as exc:
                # SQLite's busy timeout ran out; a transaction that has not read yet may retry
                if conn.dialect.name != "sqlite" or not is_busy(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))
        if result.rowcount != 1:
            last = conn.execute(sa.select(sa.func.max(schema.entries.c.seq))).scalar()
            raise ChainBroken(
                "the audit head anchor is missing: verify the log before appending",
                int(last or 0) + 1,
            )

    def _append_locked(self, conn: sa.Connection, record: AuditRecord) -> AuditEntry:
        current = conn.execute(
            sa.select(schema.head.c.seq, schema.head.c.hash).where(
                schema.head.c.id == schema.HEAD_ID
            )
        ).one()
        seq = int(current.seq) + 1
        prev = str(current.hash)
        moment = self.now()
        body = record.body(
            seq=seq,
            prev_hash=prev,
            timestamp=moment,
            signer=self._signer,
        )
        text = canonical_json(body)
        digest = chain_hash(prev, text)
        signature = None if self._key is None else sign_entry(self._key, digest)
        conn.execute(
            sa.insert(schema.entries).values(
                seq=seq,
                ts=body["ts"],
                actor=record.actor,
                operation=str(record.operation),
                body=text,
                prev_hash=prev,
                hash=digest,
                signature=signature,
            )
        )
        if self.scoper is not None:
            scopes = sorted(self.scoper(conn, record))
            if scopes:
                conn.execute(sa.insert(schema.scopes), [{"seq": seq, "scope": s} for s in scopes])
        conn.execute(
            sa.update(schema.head)
            .where(schema.head.c.id == schema.HEAD_ID)
            .values(
                seq=seq,
                hash=digest,
                signature=None if self._key is None else sign_head(self._key, seq, digest),
                signer=self._signer,
            )
        )
        if record.operation in ACCESS_OPS:
            self._bump_access_epoch(conn)
        stored = dataclasses.replace(record, probe_image=None)
        return AuditEntry(
            seq=seq,
            timestamp=parse_timestamp(str(body["ts"])),
            record=stored,
            prev_hash=prev,
            hash=digest,
            signature=signature,
            signer=self._signer,
        )

    def _ensure_head(self) -> None:
        with translate_errors("audit open"), self._engine.connect() as conn:
            present = conn.execute(
                sa.select(schema.head.c.id).where(schema.head.c.id == schema.HEAD_ID)
            ).first()
            any_entry = conn.execute(sa.select(schema.entries.c.seq).limit(1)).first()
            conn.rollback()
        if present is not None or any_entry is not None:
            # a log with entries but no head was tampered with: leave it for verify() to report
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.insert(schema.head).values(
                        id=schema.HEAD_ID, seq=0, hash=GENESIS_HASH, signature=None, signer=None
                    )
                )
        except sa_exc.IntegrityError:
            pass  # another process created it first

    # -- reading -----------------------------------------------------------------------------

    def head(self) -> ChainHead:
        """The stored head anchor (copy it elsewhere to detect a rollback later)."""
        with translate_errors("audit head"):
            found = self._read_head()
        if found is None:
            raise ChainBroken("the audit head anchor is missing", 1)
        return found

    def _read_head(self) -> ChainHead | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.head).where(schema.head.c.id == schema.HEAD_ID)
            ).first()
            conn.rollback()
        if row is None:
            return None
        return ChainHead(int(row.seq), str(row.hash), row.signature, row.signer)

    def _rows(
        self,
        *,
        after_seq: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
        operation: str | None = None,
        actor: str | None = None,
        scope: str | None = None,
    ) -> Iterator[StoredRow]:
        """Stored rows in seq order, read a page at a time (no connection held between pages)."""
        t = schema.entries
        cursor: Any = after_seq
        while True:
            query = sa.select(t).where(t.c.seq > cursor).order_by(t.c.seq).limit(_PAGE)
            if scope is not None:
                query = query.where(self.in_scope(t.c.seq, scope))
            if start is not None:
                query = query.where(t.c.ts >= format_timestamp(start))
            if end is not None:
                query = query.where(t.c.ts < format_timestamp(end))
            if operation is not None:
                query = query.where(t.c.operation == operation)
            if actor is not None:
                query = query.where(t.c.actor == actor)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
                conn.rollback()
            for r in rows:
                yield StoredRow(
                    r.seq, r.ts, r.actor, r.operation, r.body, r.prev_hash, r.hash, r.signature
                )
            if len(rows) < _PAGE:
                return
            cursor = rows[-1].seq

    def in_scope(self, seq: sa.ColumnElement[Any], scope: str) -> sa.ColumnElement[bool]:
        """Whether the entry numbered ``seq`` concerns ``scope``."""
        s = schema.scopes
        found: sa.ColumnElement[bool] = seq.in_(sa.select(s.c.seq).where(s.c.scope == scope))
        if scope == self.default_scope:
            found = sa.or_(found, seq.not_in(sa.select(s.c.seq)))
        return found

    def scopes(self, seq: int) -> frozenset[str]:
        """The scopes entry ``seq`` is indexed under (``default_scope`` when none)."""
        s = schema.scopes
        with translate_errors("audit read"), self._engine.connect() as conn:
            found = frozenset(
                str(x) for x in conn.execute(sa.select(s.c.scope).where(s.c.seq == seq)).scalars()
            )
            conn.rollback()
        if not found and self.default_scope is not None:
            return frozenset({self.default_scope})
        return found

    def entries(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        operation: str | None = None,
        actor: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        scope: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Entries with ``start <= time < end`` (either may be None), in seq order; only those
        concerning ``scope`` (an organisation) when one is given."""
        if limit is not None and limit < 0:
            raise InvalidArgument("limit must not be negative")
        count = 0
        with translate_errors("audit read"):
            for row in self._rows(
                after_seq=after_seq,
                start=start,
                end=end,
                operation=operation,
                actor=actor,
                scope=scope,
            ):
                if limit is not None and count >= limit:
                    return
                yield _parse_row(row)
                count += 1

    def get(self, seq: int) -> AuditEntry:
        with translate_errors("audit read"), self._engine.connect() as conn:
            r = conn.execute(sa.select(schema.entries).where(schema.entries.c.seq == seq)).first()
            conn.rollback()
        if r is None:
            raise NotFound(f"no audit entry {seq}")
        return _parse_row(
            StoredRow(r.seq, r.ts, r.actor, r.operation, r.body, r.prev_hash, r.hash, r.signature)
        )

    def export_jsonl(
        self,
        fp: TextIO,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        scope: str | None = None,
    ) -> int:
        """Write entries as JSON lines ``{"body": ..., "hash": ..., "signature": ...}``.

        Each body is exactly the hashed object, so :func:`verify_jsonl` can check an export
        without the database. With ``scope`` (an organisation), an entry that does not concern
        it is written as a stub ``{"seq", "prev_hash", "hash", "signature", "withheld": true}``,
        which keeps the chain linked but shows nothing of the entry. Returns the number of
        lines written.
        """
        count = 0
        visible = None if scope is None else self._rows(start=start, end=end, scope=scope)
        with translate_errors("audit export"):
            shown = None if visible is None else next(visible, None)
            for row in self._rows(start=start, end=end):
                if visible is not None:
                    while shown is not None and _seq_of(shown) < _seq_of(row):
                        shown = next(visible, None)
                    if shown is None or _seq_of(shown) != _seq_of(row):
                        stub = {
                            "seq": row.seq,
                            "prev_hash": row.prev_hash,
                            "hash": row.hash,
                            "signature": row.signature,
                            "withheld": True,
                        }
                        fp.write(canonical_json(stub) + "\n")
                        count += 1
                        continue
                try:
                    body = parse_json(str(row.body))
                except ValueError:
                    raise ChainBroken(
                        f"audit entry {row.seq} is corrupt", int(str(row.seq))
                    ) from None
                line = {"body": body, "hash": row.hash, "signature": row.signature}
                fp.write(canonical_json(line) + "\n")
                count += 1
        return count

    def report(self, start: datetime, end: datetime) -> dict[str, Any]:
        """Use of the engine in ``[start, end)`` (see :func:`.report.build_report`)."""
        return build_report(self.entries(start, end), start, end)

    # -- verification ------------------------------------------------------------------------

    def verify(
        self, *, verify_key: Ed25519PublicKey | None = None, anchor: ChainHead | None = None
    ) -> VerifyReport:
        """Walk the whole chain; report the first position that fails.

        Detects any edited byte, dropped, inserted or reordered entry, and truncation (by the
        head anchor). With ``verify_key`` (by default the public half of this log's signing
        key, if it has one) every entry and the head must be signed by that key.
        ``anchor`` is a head saved earlier outside the database: the log must still contain
        it, which also detects a rollback of the whole database (head included).
        """
        trusted = self._signer if verify_key is None else public_key_hex(verify_key)
        with translate_errors("audit verify"):
            head1 = self._read_head()
            want = {h.seq for h in (head1, anchor) if h is not None}
            walker = ChainWalker(trusted_signer=trusted, want_hashes=want)
            for row in self._rows():
                if walker.feed(row) is not None:
                    break
            problem = walker.problem
            if problem is None:
                problem = walker.check_head(head1)
            if problem is None and head1 is not None and walker.last_seq > head1.seq:
                # entries past the head read first: appended since, or inserted by hand
                problem = self._check_later_head(walker)
            if problem is None and anchor is not None:
                problem = walker.check_head(anchor, what="external anchor")
        return VerifyReport(
            ok=problem is None,
            entries=walker.count,
            first_bad_position=None if problem is None else problem.position,
            reason=None if problem is None else problem.reason,
            head=head1,
            signed_entries=walker.signed,
        )

    def _check_later_head(self, walker: ChainWalker) -> Problem | None:
        head2 = self._read_head()
        last = walker.last_seq
        if head2 is None:
            return walker.check_head(None)
        if head2.seq < last:
            return Problem(head2.seq + 1, f"entries after the head anchor ({head2.seq}): inserted")
        if head2.seq == last:
            return walker.check_head(head2)
        return None  # more appended meanwhile; everything up to `last` has been checked


def verify_jsonl(
    lines: Iterable[str],
    *,
    verify_key: Ed25519PublicKey | None = None,
    anchor: ChainHead | None = None,
    partial: bool = False,
) -> VerifyReport:
    """Verify an export made by :meth:`AuditLog.export_jsonl`, without the database.

    A full export must start at entry 1; ``partial=True`` accepts a window and trusts the
    ``prev`` hash of its first entry. Truncation of an export is detected only with ``anchor``.
    An organisation's export holds stubs for the entries it may not read: their position,
    link and signature are checked (by ``verify_key``, else by the key that signs the entries
    shown), not their hash, which only the withheld body could recompute; the report counts
    them as ``withheld_entries``.
    """
    trusted = None if verify_key is None else public_key_hex(verify_key)
    walker: ChainWalker | None = None
    problem: Problem | None = None
    stubs = _Stubs(trusted)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        stub = _stub_from_line(line)
        row = _row_from_line(line) if stub is None else stub
        if walker is None:
            first_seq = row.seq if partial and isinstance(row.seq, int) else 1
            first_prev = row.prev_hash if partial and _is_hash(row.prev_hash) else GENESIS_HASH
            walker = ChainWalker(
                trusted_signer=trusted,
                want_hashes=() if anchor is None else (anchor.seq,),
                first_seq=first_seq,
                first_prev=str(first_prev),
            )
        if stub is not None:
            problem = stubs.feed(walker, stub)
        elif row.body is None:
            problem = Problem(walker.expected, f"line {number} is not an exported audit entry")
            walker.count += 1
        else:
            problem = walker.feed(row) or stubs.seen(walker, row)
        if problem is not None:
            break
    if walker is None:
        walker = ChainWalker(trusted_signer=trusted)
    if problem is None:
        problem = stubs.finish()
    if problem is None and anchor is not None:
        problem = walker.check_head(anchor, what="anchor")
    return VerifyReport(
        ok=problem is None,
        entries=walker.count,
        first_bad_position=None if problem is None else problem.position,
        reason=None if problem is None else problem.reason,
        head=ChainHead(walker.last_seq, walker.last_hash),
        signed_entries=walker.signed,
        withheld_entries=stubs.count,
    )


class _Stubs:
    """Checks the withheld entries of an organisation's export as the walk reaches them."""

    def __init__(self, trusted: str | None) -> None:
        self.signer = trusted
        self.count = 0
        self.unchecked: list[StoredRow] = []
        """Signed stubs met before any key to check them was known."""

    def feed(self, walker: ChainWalker, stub: StoredRow) -> Problem | None:
        n = walker.expected
        walker.count += 1
        self.count += 1
        if stub.seq != n:
            return Problem(n, f"withheld entry {stub.seq} found where entry {n} was expected")
        if stub.prev_hash != walker.prev:
            return Problem(
                n, f"withheld entry {n}: does not link to entry {n - 1} (inserted or dropped)"
            )
        if stub.signature is None:
            if walker.first_signed is not None or walker.trusted_signer is not None:
                return Problem(n, f"withheld entry {n}: unsigned, though the log is signed")
        elif self.signer is None:
            self.unchecked.append(stub)
        else:
            problem = self._check(stub)
            if problem is not None:
                return problem
            walker.signed += 1
            if walker.first_signed is None:
                walker.first_signed = n
        walker.prev = str(stub.hash)
        walker.hashes[n] = walker.prev
        walker.expected = n + 1
        return None

    def seen(self, walker: ChainWalker, row: StoredRow) -> Problem | None:
        """After a shown entry passed: learn its signer, check the stubs waiting for one."""
        if self.signer is not None or not isinstance(row.body, str):
            return None
        signer = parse_json(row.body).get("signer")
        if not isinstance(signer, str):
            return None
        self.signer = signer
        waiting, self.unchecked = self.unchecked, []
        for stub in waiting:
            problem = self._check(stub)
            if problem is not None:
                return problem
            walker.signed += 1
        return None

    def _check(self, stub: StoredRow) -> Problem | None:
        assert self.signer is not None
        if not isinstance(stub.signature, str) or not entry_signature_ok(
            self.signer, stub.signature, str(stub.hash)
        ):
            return Problem(_seq_of(stub), f"withheld entry {stub.seq}: signature does not verify")
        return None

    def finish(self) -> Problem | None:
        if self.unchecked:
            first = self.unchecked[0]
            return Problem(
                _seq_of(first),
                f"withheld entry {first.seq}: signed, but no key to check it (give the key)",
            )
        return None


def _stub_from_line(line: str) -> StoredRow | None:
    """A withheld entry's stub, or None when the line is not one."""
    try:
        data = parse_json(line)
    except (ValueError, InvalidArgument):
        return None
    if not isinstance(data, dict) or data.get("withheld") is not True or "body" in data:
        return None
    seq, prev, digest, sig = (data.get(k) for k in ("seq", "prev_hash", "hash", "signature"))
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or not (_is_hash(prev) and _is_hash(digest))
    ):
        return StoredRow(-1, None, None, None, None, None, None, None)
    if sig is not None and not isinstance(sig, str):
        return StoredRow(-1, None, None, None, None, None, None, None)
    return StoredRow(seq, None, None, None, None, prev, digest, sig)


def _row_from_line(line: str) -> StoredRow:
    try:
        data = parse_json(line)
        body = data["body"]
        text = canonical_json(body)
        if not isinstance(body, dict):
            raise ValueError("body is not an object")
        return StoredRow(
            body.get("seq"),
            body.get("ts"),
            body.get("actor"),
            body.get("op"),
            text,
            body.get("prev"),
            data["hash"],
            data["signature"],
        )
    except (ValueError, KeyError, TypeError, InvalidArgument):
        return StoredRow(None, None, None, None, None, None, None, None)


def _seq_of(row: StoredRow) -> int:
    return row.seq if isinstance(row.seq, int) else int(str(row.seq))


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _parse_row(row: StoredRow) -> AuditEntry:
    try:
        return entry_from_row(row)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        position = row.seq if isinstance(row.seq, int) else 0
        raise ChainBroken(f"audit entry {row.seq} is corrupt: {exc}", position) from None
