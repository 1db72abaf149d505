"""Tamper evidence of the audit chain on a real SQLite file and a real PostgreSQL server.

Each test plays an attacker with owner rights on the database: it drops the append-only
triggers and edits rows directly, then checks that ``verify`` finds the first bad position.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import exc as sa_exc

from faceledger.audit import AuditLog, AuditOp, AuditRecord, ChainHead, Lead, generate_signing_key
from faceledger.audit.canonical import canonical_json, parse_json
from faceledger.audit.chain import chain_hash
from faceledger.audit.schema import GUARD_DROPS
from faceledger.audit.signing import public_key_hex, sign_entry, sign_head
from faceledger.errors import ChainBroken
from faceledger.store.database import open_database

COLUMNS = ("seq", "ts", "actor", "operation", "body", "prev_hash", "hash", "signature")
N = 5


class StepClock:
    """A clock that advances one second per reading."""

    def __init__(self, start: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """SQLite only, for chain logic that reads the same rows on either database."""
    eng = open_database(str(tmp_path / "faceledger.db"))
    yield eng
    eng.dispose()


def records() -> list[AuditRecord]:
    """Varied entries: searches with scored candidates, an enrolment, a grant, a deletion."""
    return [
        AuditRecord(
            operation=AuditOp.SEARCH,
            actor="ana",
            purpose="theft investigation",
            case_ref="CASE-2024-17",
            galleries=("north", "süd"),
            model_id="dlib-resnet-v1",
            threshold=0.9312,
            target_fpir=0.01,
            probe_image=b"\xff\xd8 not really a jpeg",
            candidates=(
                Lead("north", "subj-1", 0.9731, 2.5e-6, False, 11),
                Lead("süd", "subj-9", 0.9402, 1e-4, True, 93),
            ),
        ),
        AuditRecord(operation=AuditOp.ENROL, actor="ben", galleries=("north",), details={"n": 3}),
        AuditRecord(
            operation=AuditOp.GRANT,
            actor="root",
            galleries=("north",),
            details={"user": "ana", "level": "search"},
        ),
        AuditRecord(operation=AuditOp.SEARCH, actor="ana", purpose="p", case_ref="c"),
        AuditRecord(
            operation=AuditOp.DELETE_SUBJECT,
            actor="ben",
            galleries=("north",),
            details={"subject": "subj-1", "€": [1.5, None, True]},
        ),
    ]


def build_log(engine: sa.Engine, key: Ed25519PrivateKey | None = None) -> AuditLog:
    log = AuditLog(engine, clock=StepClock(), signing_key=key)
    for record in records():
        log.append(record)
    return log


def rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM audit_entries ORDER BY seq"))
        return [dict(r._mapping) for r in result]


def tamper(engine: sa.Engine, statement: str, params: Any = None) -> None:
    """Run SQL as the database owner would, after dropping the append-only guards."""
    with engine.begin() as conn:
        for drop in GUARD_DROPS[engine.dialect.name]:
            conn.exec_driver_sql(drop)
        conn.execute(sa.text(statement), params or {})


def set_column(engine: sa.Engine, seq: int, column: str, value: Any) -> None:
    tamper(engine, f"UPDATE audit_entries SET {column} = :v WHERE seq = :s", {"v": value, "s": seq})


def insert_row(engine: sa.Engine, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    tamper(engine, f"INSERT INTO audit_entries ({cols}) VALUES (:{', :'.join(row)})", row)


def flip(text: str, pos: int) -> str:
    """The same text with one character changed."""
    return text[:pos] + chr(ord(text[pos]) ^ 1) + text[pos + 1 :]


def assert_bad_at(log: AuditLog, position: int, **kwargs: Any) -> str:
    report = log.verify(**kwargs)
    assert not report.ok, "tampering went undetected"
    assert report.first_bad_position == position, report.reason
    with pytest.raises(ChainBroken) as info:
        report.raise_if_broken()
    assert info.value.position == position
    return report.reason or ""


# -- intact chains ----------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_given_an_untouched_log_when_verified_then_ok(db_engine: sa.Engine, signed: bool) -> None:
    key = generate_signing_key() if signed else None
    log = build_log(db_engine, key)
    report = log.verify()
    assert report.ok and report.entries == N and report.first_bad_position is None
    assert report.signed_entries == (N if signed else 0)
    assert report.head is not None and report.head.seq == N
    stored = rows(db_engine)
    assert [r["seq"] for r in stored] == list(range(1, N + 1))
    for before, row in zip([None, *stored], stored, strict=False):
        assert row["prev_hash"] == (before["hash"] if before else "0" * 64)
        assert row["hash"] == chain_hash(row["prev_hash"], row["body"])
        assert canonical_json(parse_json(row["body"])) == row["body"]


def test_given_the_database_when_rows_are_updated_or_deleted_then_it_refuses(
    db_engine: sa.Engine,
) -> None:
    build_log(db_engine)
    statements = [
        "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 5",
    ]
    if db_engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_entries")
    for statement in statements:
        with pytest.raises(sa_exc.DBAPIError), db_engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert len(rows(db_engine)) == N
    assert AuditLog(db_engine).verify().ok


# -- one edited byte --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db_engine", "signed"),
    [("sqlite", False), ("sqlite", True), ("postgresql", True)],
    indirect=["db_engine"],
)
def test_given_one_character_of_any_column_edited_when_verified_then_that_entry_is_reported(
    db_engine: sa.Engine, signed: bool
) -> None:
    log = build_log(db_engine, generate_signing_key() if signed else None)
    original = rows(db_engine)
    edits = 0
    for row in original:
        seq = row["seq"]
        for column in COLUMNS:
            value = row[column]
            if column == "seq":
                variants: list[Any] = [seq + 100]
            elif value is None:  # unsigned log: a signature appears from nowhere
                variants = ["ab" * 64]
            else:
                # the body: ~15 spots spread over it; other columns: first, middle, last
                step = max(1, len(value) // (15 if column == "body" else 2))
                positions = sorted({*range(0, len(value), step), len(value) - 1})
                variants = [flip(value, p) for p in positions]
            for variant in variants:
                if column == "seq":
                    tamper(
                        db_engine,
                        "UPDATE audit_entries SET seq = :v WHERE seq = :s",
                        {"v": variant, "s": seq},
                    )
                    assert_bad_at(log, seq)
                    tamper(
                        db_engine,
                        "UPDATE audit_entries SET seq = :s WHERE seq = :v",
                        {"v": variant, "s": seq},
                    )
                else:
                    set_column(db_engine, seq, column, variant)
                    assert_bad_at(log, seq)
                    set_column(db_engine, seq, column, value)
                edits += 1
    assert edits > 100
    assert log.verify().ok, "restoring the original bytes restores a valid chain"


def test_given_a_body_edited_and_rehashed_when_verified_then_the_next_link_breaks(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine)
    row = rows(sqlite_engine)[2]
    body = parse_json(row["body"])
    body["actor"] = "someone else"
    text = canonical_json(body)
    tamper(
        sqlite_engine,
        "UPDATE audit_entries SET body = :b, actor = :a, hash = :h WHERE seq = 3",
        {"b": text, "a": "someone else", "h": chain_hash(row["prev_hash"], text)},
    )
    reason = assert_bad_at(log, 4)
    assert "link" in reason


# -- dropped, inserted, reordered -------------------------------------------------------------


def test_given_any_single_entry_dropped_when_verified_then_its_position_is_reported(
    db_engine: sa.Engine,
) -> None:
    log = build_log(db_engine)
    for row in rows(db_engine):
        tamper(db_engine, "DELETE FROM audit_entries WHERE seq = :s", {"s": row["seq"]})
        assert_bad_at(log, row["seq"])
        insert_row(db_engine, row)
    assert log.verify().ok


def _shift_up_from(engine: sa.Engine, k: int) -> None:
    for seq in range(N, k - 1, -1):
        tamper(engine, "UPDATE audit_entries SET seq = :n WHERE seq = :s", {"n": seq + 1, "s": seq})


def test_given_a_copied_entry_inserted_in_the_middle_when_verified_then_its_position(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine)
    copy = rows(sqlite_engine)[0]
    _shift_up_from(sqlite_engine, 3)
    insert_row(sqlite_engine, {**copy, "seq": 3})
    assert_bad_at(log, 3)


def test_given_a_well_forged_entry_inserted_in_the_middle_when_verified_then_next_breaks(
    sqlite_engine: sa.Engine,
) -> None:
    """A forger who links the new entry correctly still breaks the entry after it."""
    log = build_log(sqlite_engine)
    before = rows(sqlite_engine)[1]
    body = parse_json(before["body"])
    body.update(seq=3, prev=before["hash"], actor="forger")
    text = canonical_json(body)
    forged = {
        **before,
        "seq": 3,
        "actor": "forger",
        "body": text,
        "prev_hash": before["hash"],
        "hash": chain_hash(before["hash"], text),
    }
    _shift_up_from(sqlite_engine, 3)
    insert_row(sqlite_engine, forged)
    assert_bad_at(log, 4)


def test_given_an_entry_appended_by_hand_when_verified_then_it_is_beyond_the_head(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine)
    last = rows(sqlite_engine)[-1]
    body = parse_json(last["body"])
    body.update(seq=N + 1, prev=last["hash"])
    text = canonical_json(body)
    insert_row(
        sqlite_engine,
        {
            **last,
            "seq": N + 1,
            "body": text,
            "prev_hash": last["hash"],
            "hash": chain_hash(last["hash"], text),
        },
    )
    reason = assert_bad_at(log, N + 1)
    assert "head" in reason


@pytest.mark.parametrize(("a", "b"), [(1, 2), (2, 3), (4, 5), (1, 5), (2, 4)])
def test_given_two_entries_swapped_when_verified_then_the_first_is_reported(
    sqlite_engine: sa.Engine, a: int, b: int
) -> None:
    log = build_log(sqlite_engine)
    # renumber: the rows keep their content, their positions swap
    tamper(sqlite_engine, "UPDATE audit_entries SET seq = -1 WHERE seq = :a", {"a": a})
    tamper(sqlite_engine, "UPDATE audit_entries SET seq = :a WHERE seq = :b", {"a": a, "b": b})
    tamper(sqlite_engine, "UPDATE audit_entries SET seq = :b WHERE seq = -1", {"b": b})
    assert_bad_at(log, a)


def test_given_contents_of_two_rows_swapped_when_verified_then_the_first_is_reported(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine)
    stored = rows(sqlite_engine)
    for seq, source in ((2, stored[2]), (3, stored[1])):
        for column in COLUMNS[1:]:
            set_column(sqlite_engine, seq, column, source[column])
    assert_bad_at(log, 2)


# -- truncation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db_engine", "dropped"),
    [*(("sqlite", d) for d in range(1, N + 1)), ("postgresql", 2)],
    indirect=["db_engine"],
)
def test_given_the_tail_truncated_when_verified_then_the_first_missing_entry_is_reported(
    db_engine: sa.Engine, dropped: int
) -> None:
    log = build_log(db_engine)
    tamper(db_engine, "DELETE FROM audit_entries WHERE seq > :k", {"k": N - dropped})
    reason = assert_bad_at(log, N - dropped + 1)
    assert "truncated" in reason


def _rewrite_head(engine: sa.Engine, seq: int, **values: Any) -> None:
    last = rows(engine)[seq - 1]
    params = {"seq": seq, "hash": last["hash"], "signature": None, "signer": None, **values}
    tamper(
        engine,
        "UPDATE audit_head SET seq = :seq, hash = :hash, signature = :signature, "
        "signer = :signer WHERE id = 1",
        params,
    )


def test_given_truncation_with_a_rewritten_head_when_an_anchor_was_kept_then_detected(
    sqlite_engine: sa.Engine,
) -> None:
    """Unsigned: the database alone cannot tell; an anchor kept outside it can."""
    log = build_log(sqlite_engine)
    anchor = ChainHead.from_json(log.head().to_json())
    tamper(sqlite_engine, "DELETE FROM audit_entries WHERE seq > 3")
    _rewrite_head(sqlite_engine, 3)
    assert log.verify().ok  # the documented limit of a self-contained, unsigned log
    assert_bad_at(log, 4, anchor=anchor)


def test_given_a_signed_log_truncated_and_head_rewritten_when_verified_then_detected(
    db_engine: sa.Engine,
) -> None:
    key = generate_signing_key()
    log = build_log(db_engine, key)
    tamper(db_engine, "DELETE FROM audit_entries WHERE seq > 3")
    _rewrite_head(db_engine, 3)  # unsigned
    assert_bad_at(log, 4)
    _rewrite_head(db_engine, 3, signature="00" * 64, signer=public_key_hex(key.public_key()))
    assert_bad_at(log, 4)
    mallory = generate_signing_key()
    forged = sign_head(mallory, 3, rows(db_engine)[2]["hash"])
    _rewrite_head(db_engine, 3, signature=forged, signer=public_key_hex(mallory.public_key()))
    assert_bad_at(log, 4)


def test_given_a_signed_log_rolled_back_to_an_old_head_when_anchor_kept_then_detected(
    sqlite_engine: sa.Engine,
) -> None:
    """Replaying an older, genuinely signed head needs an outside anchor to be caught."""
    key = generate_signing_key()
    log = AuditLog(sqlite_engine, clock=StepClock(), signing_key=key)
    for record in records()[:3]:
        log.append(record)
    old_head = log.head()
    for record in records()[3:]:
        log.append(record)
    anchor = log.head()
    tamper(sqlite_engine, "DELETE FROM audit_entries WHERE seq > 3")
    _rewrite_head(sqlite_engine, 3, signature=old_head.signature, signer=old_head.signer)
    assert log.verify().ok
    assert_bad_at(log, 4, anchor=anchor)


def test_given_the_head_row_deleted_when_verified_or_appended_then_refused(
    db_engine: sa.Engine,
) -> None:
    log = build_log(db_engine)
    tamper(db_engine, "DELETE FROM audit_head")
    assert_bad_at(log, N + 1)
    with pytest.raises(ChainBroken) as info:
        log.append(AuditRecord(operation="search", actor="x"))
    assert info.value.position == N + 1
    assert len(rows(db_engine)) == N


@pytest.mark.parametrize(
    ("seq", "hash_", "signature", "signer"),
    [
        (-3, "00" * 32, None, None),
        (3, "not hex", None, None),
        (N, None, "zz", "00" * 32),
        (N, None, "00" * 64, "not a key"),
    ],
)
def test_given_a_garbled_head_row_when_verified_then_reported_not_crashed(
    sqlite_engine: sa.Engine, seq: int, hash_: str | None, signature: str | None, signer: str | None
) -> None:
    key = generate_signing_key()
    log = build_log(sqlite_engine, key)
    real_hash = rows(sqlite_engine)[-1]["hash"]
    tamper(
        sqlite_engine,
        "UPDATE audit_head SET seq = :seq, hash = :h, signature = :g, signer = :k",
        {"seq": seq, "h": hash_ or real_hash, "g": signature, "k": signer},
    )
    report = log.verify()
    assert not report.ok and report.first_bad_position is not None
    assert 1 <= report.first_bad_position <= N + 1


# -- keys -------------------------------------------------------------------------------------


def test_given_a_wrong_verify_key_when_verified_then_the_first_entry_fails(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine, generate_signing_key())
    reason = assert_bad_at(log, 1, verify_key=generate_signing_key().public_key())
    assert "another key" in reason


def test_given_an_unsigned_log_when_verified_with_a_key_then_the_first_entry_fails(
    sqlite_engine: sa.Engine,
) -> None:
    log = build_log(sqlite_engine)
    assert log.verify().ok
    assert_bad_at(log, 1, verify_key=generate_signing_key().public_key())


def test_given_a_tail_re_signed_with_another_key_when_verified_then_the_forgery_is_found(
    sqlite_engine: sa.Engine,
) -> None:
    """An attacker rewrites entry 3 onward, re-chains and re-signs all of it with their key."""
    key = generate_signing_key()
    log = build_log(sqlite_engine, key)
    mallory = generate_signing_key()
    signer = public_key_hex(mallory.public_key())
    prev = rows(sqlite_engine)[1]["hash"]
    for row in rows(sqlite_engine)[2:]:
        body = parse_json(row["body"])
        body.update(prev=prev, signer=signer, actor="mallory")
        text = canonical_json(body)
        digest = chain_hash(prev, text)
        tamper(
            sqlite_engine,
            "UPDATE audit_entries SET body = :b, actor = 'mallory', prev_hash = :p, "
            "hash = :h, signature = :g WHERE seq = :s",
            {"b": text, "p": prev, "h": digest, "g": sign_entry(mallory, digest), "s": row["seq"]},
        )
        prev = digest
    _rewrite_head(sqlite_engine, N, signature=sign_head(mallory, N, prev), signer=signer)
    assert AuditLog(sqlite_engine).verify().ok  # consistent, but only with itself
    reason = assert_bad_at(log, 3)  # this log knows its own key
    assert "another key" in reason
    assert_bad_at(AuditLog(sqlite_engine), 3, verify_key=key.public_key())


# -- concurrency ------------------------------------------------------------------------------


def _append_many(url: str, worker: int, count: int) -> None:
    engine = open_database(url)
    log = AuditLog(engine)
    for i in range(count):
        log.append(AuditRecord(operation="search", actor=f"w{worker}", details={"i": i}))
    engine.dispose()


def _check_concurrent_chain(log: AuditLog, workers: int, count: int) -> None:
    report = log.verify()
    assert report.ok, report.reason
    assert report.entries == workers * count
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(1, workers * count + 1))
    for w in range(workers):
        mine = [e.record.details["i"] for e in entries if e.record.actor == f"w{w}"]
        assert mine == list(range(count)), "each writer's entries are all there, in order"


def test_given_threads_appending_at_once_when_verified_then_one_unforked_chain(
    db_engine: sa.Engine,
) -> None:
    log = AuditLog(db_engine)
    workers, count = 6, 12
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            barrier.wait()
            for i in range(count):
                log.append(AuditRecord(operation="search", actor=f"w{w}", details={"i": i}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    _check_concurrent_chain(log, workers, count)


def test_given_processes_appending_at_once_when_verified_then_one_unforked_chain(
    db_engine: sa.Engine,
) -> None:
    url = db_engine.url.render_as_string(hide_password=False)
    AuditLog(db_engine)  # tables exist before the race
    db_engine.dispose()  # no pooled connection is inherited by the children
    workers, count = 3, 10
    # fork: the children only run SQL on their own engines, and start in milliseconds
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(url, w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    _check_concurrent_chain(AuditLog(db_engine), workers, count)


def test_given_a_plain_sqlalchemy_sqlite_engine_when_threads_append_then_chain_holds(
    tmp_path: Path,
) -> None:
    """No store hooks (implicit transactions of the sqlite3 module): appends still serialise."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    log = AuditLog(engine)
    workers, count = 4, 10
    threads = [
        threading.Thread(
            target=lambda w=w: [
                log.append(AuditRecord(operation="search", actor=f"w{w}", details={"i": i}))
                for i in range(count)
            ]
        )
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_concurrent_chain(log, workers, count)


def test_given_appends_running_when_verifying_then_never_a_false_alarm(
    db_engine: sa.Engine,
) -> None:
    """Verification reads the head, then the entries: entries committed meanwhile are fine."""
    log = AuditLog(db_engine)
    stop = threading.Event()
    appended: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            appended.append(log.append(AuditRecord(operation="enrol", actor="w")).seq)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reports = []
        while len(reports) < 15 or len(appended) < 15:
            reports.append(log.verify())
    finally:
        stop.set()
        thread.join()
    assert all(r.ok for r in reports), [r.reason for r in reports if not r.ok]
    assert len({r.entries for r in reports}) > 1, "verification overlapped with appends"
    assert log.verify().entries == len(appended)
