"""The audit log's API on a real SQLite file: entries, export, offline verification, report,
probe images, keys, and the all-or-nothing transaction shared with callers' own rows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from faceledger.audit import (
    AuditLog,
    AuditOp,
    AuditRecord,
    ChainHead,
    Lead,
    generate_signing_key,
    load_signing_key,
    load_verify_key,
    public_key_hex,
    signing_key_pem,
    verify_jsonl,
)
from faceledger.audit.canonical import canonical_json, parse_json
from faceledger.errors import ChainBroken, InvalidArgument, NotFound
from faceledger.store.database import open_database

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class StepClock:
    def __init__(self, start: datetime = T0, step: timedelta = timedelta(hours=1)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = open_database(str(tmp_path / "faceledger.db"))
    yield eng
    eng.dispose()


def search(
    actor: str, purpose: str, galleries: tuple[str, ...], scores: list[float]
) -> AuditRecord:
    return AuditRecord(
        operation=AuditOp.SEARCH,
        actor=actor,
        purpose=purpose,
        case_ref="C-1",
        galleries=galleries,
        model_id="dlib-resnet-v1",
        target_fpir=0.01,
        candidates=tuple(Lead(galleries[0], f"s{i}", s, 1e-5) for i, s in enumerate(scores)),
    )


def test_given_entries_when_read_back_then_every_field_survives(engine: sa.Engine) -> None:
    clock = StepClock()
    log = AuditLog(engine, clock=clock)
    record = AuditRecord(
        operation=AuditOp.SEARCH,
        actor="ana",
        purpose="fraud",
        case_ref="F-9",
        galleries=("a", "b"),
        model_id="m1",
        threshold=0.9,
        target_fmr=1e-4,
        target_fpir=0.01,
        probe_sha256="ab" * 32,
        candidates=(Lead("a", "x", 0.97, 3.2e-7, True, 5), Lead("b", "y", 0.91)),
        details={"k": [1, 2.5, "z", None], "nested": {"ok": True}},
    )
    written = log.append(record)
    read = log.get(1)
    assert read == written
    assert read.record == record
    assert read.timestamp == T0 + timedelta(hours=1)
    assert list(log.entries()) == [read]
    with pytest.raises(NotFound):
        log.get(2)


def test_given_a_time_window_when_listing_then_only_entries_inside_it(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=StepClock())
    for i in range(6):
        log.append(AuditRecord(operation="enrol" if i % 2 else "search", actor=f"u{i}"))
    # entries stamped T0+1h .. T0+6h
    window = list(log.entries(T0 + timedelta(hours=2), T0 + timedelta(hours=5)))
    assert [e.seq for e in window] == [2, 3, 4]
    assert [e.seq for e in log.entries(operation="enrol")] == [2, 4, 6]
    assert [e.seq for e in log.entries(actor="u3")] == [4]
    assert [e.seq for e in log.entries(after_seq=4)] == [5, 6]
    assert [e.seq for e in log.entries(limit=2)] == [1, 2]


def test_given_probe_bytes_then_only_their_hash_enters_the_chain(
    engine: sa.Engine,
) -> None:
    probe = b"\x89PNG probe bytes"
    digest = hashlib.sha256(probe).hexdigest()
    plain = AuditLog(engine)
    entry = plain.append(AuditRecord(operation="search", actor="a", probe_image=probe))
    assert entry.record.probe_sha256 == digest and entry.record.probe_image is None
    with engine.connect() as conn:
        body = conn.execute(sa.text("SELECT body FROM audit_entries WHERE seq = 1")).scalar_one()
    assert digest in body and base64.b64encode(probe).decode() not in body

    assert plain.verify().ok


def test_given_a_probe_hash_that_does_not_match_the_bytes_when_recorded_then_refused() -> None:
    with pytest.raises(InvalidArgument):
        AuditRecord(operation="search", actor="a", probe_image=b"x", probe_sha256="00" * 32)


@pytest.mark.parametrize(
    "make",
    [
        lambda: AuditRecord(operation="Search!", actor="a"),
        lambda: AuditRecord(operation="search", actor=" "),
        lambda: AuditRecord(operation="search", actor="a", galleries="north"),  # type: ignore[arg-type]
        lambda: AuditRecord(operation="search", actor="a", threshold=float("nan")),
        lambda: AuditRecord(operation="search", actor="a", probe_sha256="XYZ"),
        lambda: Lead("g", "s", float("inf")),
    ],
)
def test_given_a_malformed_record_when_built_then_refused(make: object) -> None:
    with pytest.raises(InvalidArgument):
        make()  # type: ignore[operator]


def test_given_details_that_are_not_json_when_appended_then_nothing_is_stored(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine)
    log.append(AuditRecord(operation="search", actor="a"))
    with pytest.raises(InvalidArgument):
        log.append(AuditRecord(operation="search", actor="a", details={"x": {1, 2}}))  # type: ignore[dict-item]
    assert log.head().seq == 1
    assert log.verify().ok and log.verify().entries == 1


def test_given_a_naive_clock_when_appending_then_refused(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=lambda: datetime(2024, 1, 1))
    with pytest.raises(InvalidArgument):
        log.append(AuditRecord(operation="search", actor="a"))
    assert log.head().seq == 0


def test_given_own_rows_in_the_audit_transaction_when_it_fails_then_neither_is_kept(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE things (name TEXT)"))
    with pytest.raises(RuntimeError), log.writing() as conn:
        conn.execute(sa.text("INSERT INTO things VALUES ('a')"))
        log.append(AuditRecord(operation="enrol", actor="a"), connection=conn)
        raise RuntimeError("the caller's work failed after the entry was written")
    with log.writing() as conn:
        conn.execute(sa.text("INSERT INTO things VALUES ('b')"))
        log.append(AuditRecord(operation="enrol", actor="b"), connection=conn)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM things")).scalars().all() == ["b"]
    assert [e.record.actor for e in log.entries()] == ["b"]
    assert log.verify().ok


def test_given_a_connection_not_from_writing_when_appending_then_refused(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine)
    with engine.begin() as conn, pytest.raises(InvalidArgument):
        log.append(AuditRecord(operation="enrol", actor="a"), connection=conn)


# -- export and offline verification ----------------------------------------------------------


def exported(log: AuditLog, **kwargs: datetime) -> list[str]:
    buffer = io.StringIO()
    count = log.export_jsonl(buffer, **kwargs)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == count
    return lines


def test_given_an_export_when_verified_offline_then_ok_and_tampering_found(
    engine: sa.Engine,
) -> None:
    key = generate_signing_key()
    log = AuditLog(engine, clock=StepClock(), signing_key=key)
    for i in range(5):
        log.append(search("ana", "p", ("g",), [0.9 + i / 100]))
    lines = exported(log)
    assert all(json.loads(line)["body"]["seq"] == i + 1 for i, line in enumerate(lines))
    anchor = log.head()
    good = verify_jsonl(lines, verify_key=key.public_key(), anchor=anchor)
    assert good.ok and good.entries == 5 and good.signed_entries == 5

    edited = json.loads(lines[2])
    edited["body"]["candidates"][0]["score"] = 0.999
    bad = [*lines[:2], json.dumps(edited), *lines[3:]]
    assert verify_jsonl(bad).first_bad_position == 3
    assert verify_jsonl([*lines[:1], *lines[2:]]).first_bad_position == 2
    assert verify_jsonl([lines[1], lines[0], *lines[2:]]).first_bad_position == 1
    assert verify_jsonl([*lines[:2], "not json", *lines[2:]]).first_bad_position == 3
    assert verify_jsonl(lines[:3]).ok  # a truncated export is only caught with an anchor
    assert verify_jsonl(lines[:3], anchor=anchor).first_bad_position == 4
    other = generate_signing_key().public_key()
    assert verify_jsonl(lines, verify_key=other).first_bad_position == 1


def test_given_a_window_export_when_verified_as_partial_then_ok(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=StepClock())
    for i in range(6):
        log.append(AuditRecord(operation="search", actor=f"u{i}"))
    window = exported(log, start=T0 + timedelta(hours=3), end=T0 + timedelta(hours=6))
    assert [json.loads(x)["body"]["seq"] for x in window] == [3, 4, 5]
    assert not verify_jsonl(window).ok
    report = verify_jsonl(window, partial=True)
    assert report.ok and report.head is not None and report.head.seq == 5
    assert report.head.hash == log.get(5).hash


def test_given_export_lines_when_rehashed_then_they_are_the_stored_bytes(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine)
    log.append(AuditRecord(operation="search", actor="zoë", details={"x": 0.1 + 0.2, "y": 1e-7}))
    (line,) = exported(log)
    with engine.connect() as conn:
        body = conn.execute(sa.text("SELECT body FROM audit_entries")).scalar_one()
    assert canonical_json(parse_json(line)["body"]) == body


# -- head and keys ----------------------------------------------------------------------------


def test_given_a_head_when_saved_as_json_then_it_reads_back(engine: sa.Engine) -> None:
    key = generate_signing_key()
    log = AuditLog(engine, signing_key=key)
    assert log.head() == ChainHead(0, "0" * 64)
    log.append(AuditRecord(operation="search", actor="a"))
    head = log.head()
    assert head.seq == 1 and head.signer == public_key_hex(key.public_key())
    assert ChainHead.from_json(json.loads(json.dumps(head.to_json()))) == head
    with pytest.raises(InvalidArgument):
        ChainHead.from_json({"seq": "x"})


def test_given_key_files_when_loaded_then_they_sign_and_verify(engine: sa.Engine) -> None:
    key = generate_signing_key()
    loaded = load_signing_key(signing_key_pem(key))
    public_hex = public_key_hex(key.public_key())
    assert public_key_hex(loaded.public_key()) == public_hex
    assert public_key_hex(load_verify_key(public_hex.encode())) == public_hex
    log = AuditLog(engine, signing_key=loaded)
    log.append(AuditRecord(operation="search", actor="a"))
    assert AuditLog(engine).verify(verify_key=load_verify_key(public_hex.encode())).ok
    with pytest.raises(InvalidArgument):
        load_signing_key(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


def test_given_a_corrupt_body_when_listing_then_chain_broken_names_the_entry(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine)
    log.append(AuditRecord(operation="search", actor="a"))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
        conn.exec_driver_sql("UPDATE audit_entries SET body = '{' WHERE seq = 1")
    with pytest.raises(ChainBroken) as info:
        list(log.entries())
    assert info.value.position == 1


# -- report -----------------------------------------------------------------------------------


def test_given_a_period_of_use_when_reported_then_counts_and_rates_match(
    engine: sa.Engine,
) -> None:
    log = AuditLog(engine, clock=StepClock())
    log.append(search("ana", "fraud", ("north",), [0.95, 0.93]))  # T0+1h
    log.append(search("ana", "fraud", ("north", "south"), []))  # +2h
    log.append(search("bo", "missing person", ("south",), [0.97]))  # +3h
    log.append(AuditRecord(operation="verify", actor="bo", purpose="access"))  # +4h
    for reviewer, verdict, status in [
        ("cy", "confirmed", "awaiting_second_confirmation"),
        ("di", "confirmed", "confirmed"),
    ]:
        log.append(
            AuditRecord(
                operation="review",
                actor=reviewer,
                details={"search_id": "s1", "rank": 1, "verdict": verdict, "status": status},
            )
        )  # +5h, +6h
    log.append(
        AuditRecord(
            operation="review",
            actor="cy",
            details={"search_id": "s1", "rank": 2, "verdict": "rejected", "status": "rejected"},
        )
    )  # +7h
    log.append(AuditRecord(operation="delete_subject", actor="ed"))  # +8h
    log.append(AuditRecord(operation="erasure_receipt", actor="ed"))  # +9h
    log.append(AuditRecord(operation="retention_purge", actor="ed", details={"count": 4}))  # +10h
    log.append(AuditRecord(operation="grant", actor="root"))  # +11h
    log.append(search("ana", "late", ("north",), [0.9]))  # +12h, outside the window

    report = log.report(T0, T0 + timedelta(hours=12))
    assert report["entries"] == 11
    s = report["searches"]
    assert s["total"] == 3
    assert s["by_purpose"] == {"fraud": 2, "missing person": 1}
    assert s["by_gallery"] == {"north": 2, "south": 2}
    assert s["by_actor"] == {"ana": 2, "bo": 1}
    assert s["candidates_returned"] == 3 and s["with_candidates"] == 2
    assert s["candidate_rate"] == pytest.approx(2 / 3)
    assert report["verifications"] == {"total": 1, "by_purpose": {"access": 1}}
    r = report["reviews"]
    assert r["decisions"] == 3
    assert r["by_verdict"] == {"confirmed": 2, "rejected": 1}
    assert r["by_reviewer"] == {"cy": {"confirmed": 1, "rejected": 1}, "di": {"confirmed": 1}}
    assert r["leads_reviewed"] == 2 and r["leads_confirmed"] == 1
    assert r["confirmation_rate"] == pytest.approx(0.5)
    assert report["deletions"] == {
        "subjects_deleted": 1,
        "erasure_receipts": 1,
        "retention_purges": 1,
        "retention_items_purged": 4,
    }
    assert report["access"] == {"grants": 1, "revocations": 0}
    json.dumps(report)  # serialisable as is

    empty = log.report(T0 - timedelta(days=2), T0 - timedelta(days=1))
    assert empty["entries"] == 0 and empty["searches"]["candidate_rate"] is None


def test_report_counts_document_checks_by_decision_and_reason(engine: sa.Engine) -> None:
    log = AuditLog(engine, clock=StepClock())
    for reasons in (["match"], ["mrz_invalid", "match"], ["expired", "no_match"]):
        decision = "pass" if reasons == ["match"] else "refer"
        log.append(
            AuditRecord(
                operation="document_check",
                actor="officer",
                purpose="border control",
                case_ref="GATE-7",
                details={"decision": decision, "reasons": reasons},
            )
        )
    report = log.report(T0, T0 + timedelta(hours=12))
    assert report["document_checks"] == {
        "total": 3,
        "by_purpose": {"border control": 3},
        "by_decision": {"pass": 1, "refer": 2},
        "by_reason": {"expired": 1, "match": 2, "mrz_invalid": 1, "no_match": 1},
        "referral_rate": pytest.approx(2 / 3),
    }
