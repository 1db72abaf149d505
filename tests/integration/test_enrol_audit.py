"""Enrolment is audited in the transaction that stores the templates (issue #19 item 4).

A killed bulk enrolment used to leave searchable templates with no audit entry until a later
run finished, and that run's ``enrol`` entry counted only its own run. Now each committed
batch carries its ``enrol_batch`` entry in the same transaction, and the job's final ``enrol``
entry reports the whole job, counted from the store's item records. Tested here with real
SIGKILLs of the CLI on ORL, on SQLite and PostgreSQL, and on the store and use case directly.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import faceledger
from faceledger import Engine, Settings
from faceledger.audit import AuditLog, AuditOp, AuditRecord
from faceledger.errors import AuditError, Conflict, InvalidArgument
from faceledger.gallery import local_operator, open_workspace
from faceledger.index import load_index
from faceledger.store import ItemOutcome, ItemStatus, NewTemplate, SqlStore, open_database
from faceledger.types import Template
from faceledger.usecases import EnrolImage, enrol_image
from tests.postgres import PostgresCluster

KILLS = 3
SUBJECTS = 20
"""ORL s1..s20: 200 images, enough batches for every kill and the run that finishes."""
SAMPLE = Path(faceledger.__file__).parent / "sample"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the workspace's own SQLite file; else a fresh schema on the test server."""
    if request.param == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield cluster.create_schema(schema)
    cluster.drop_schema(schema)


def _env(data: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELEDGER_")}
    env.update(
        FACELEDGER_DATA_DIR=str(data),
        FACELEDGER_GATE_MIN_INTER_EYE_PX="8",
        FACELEDGER_GATE_MIN_SCORE="20",
        FACELEDGER_WORKERS="2",
        FACELEDGER_OPERATOR="audit-test",
    )
    if database_url is not None:
        env["FACELEDGER_DATABASE_URL"] = database_url
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "faceledger", *args]


def _orl_csv(data_dir: Path, csv: Path) -> str:
    rows = [
        f"{p},s{n}"
        for n in range(1, SUBJECTS + 1)
        for p in sorted((data_dir / "orl" / f"s{n}").glob("*.pgm"))
    ]
    csv.write_text("\n".join(["image,subject", *rows]) + "\n")
    return str(csv)


def _items_recorded(db: sa.Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM job_items")).scalar_one())


def _wait_for_a_commit(
    proc: subprocess.Popen[bytes], db: sa.Engine, before: int, log: Path
) -> None:
    """Until the running job has committed a batch of its own."""
    deadline = time.monotonic() + 180
    while _items_recorded(db) <= before:
        if proc.poll() is not None:
            pytest.fail(f"enrolment exited ({proc.returncode}) early:\n{log.read_text()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("no batch committed within 180 s")
        time.sleep(0.02)


@dataclass(frozen=True)
class JobState:
    """The one job of gallery ``orl`` as the store and the audit log hold it."""

    batches: list[dict[str, Any]]
    """Details of the job's ``enrol_batch`` entries, in log order."""
    finals: list[dict[str, Any]]
    """Details of the job's ``enrol`` entries."""
    items: Counter[str]
    """The store's job items by status."""
    templates: set[int]
    chain_ok: bool
    subjects_without_template: int = 0
    """Subjects of the gallery holding no template (a kill must leave none)."""


def _job_state(url: str) -> JobState:
    db = open_database(url)
    try:
        store, log = SqlStore(db), AuditLog(db)
        gallery = store.get_gallery_by_name("orl")
        (job,) = store.list_jobs(gallery.id)

        def of_job(op: str) -> list[dict[str, Any]]:
            found = (dict(e.record.details) for e in log.entries(operation=op))
            return [d for d in found if d.get("job_id") == job.id]

        return JobState(
            batches=of_job(AuditOp.ENROL_BATCH),
            finals=of_job(AuditOp.ENROL),
            items=Counter(str(i.status) for i in store.list_job_items(job.id)),
            templates=set(store.template_ids(gallery.id).tolist()),
            chain_ok=log.verify().ok,
            subjects_without_template=_bare_subjects(store, gallery.id),
        )
    finally:
        db.dispose()


def _bare_subjects(store: SqlStore, gallery_id: int) -> int:
    subjects = store.list_subjects(gallery_id, limit=1000).items
    counts = store.template_counts([s.id for s in subjects])
    return sum(1 for s in subjects if counts.get(s.id, 0) == 0)


def _assert_batches_cover_the_store(state: JobState) -> None:
    """Every stored template is named by exactly one batch entry, and the batch entries'
    counts are the store's job items."""
    named = [t for b in state.batches for t in b["template_ids"]]
    assert len(named) == len(set(named))
    assert set(named) == state.templates
    assert sum(b["enrolled"] for b in state.batches) == state.items["enrolled"]
    assert state.items["enrolled"] == len(state.templates)
    assert sum(b["rejected"] for b in state.batches) == state.items["rejected"]
    assert sum(b["duplicates"] for b in state.batches) == state.items["skipped_duplicate"]
    assert [b["batch"] for b in state.batches] == list(range(1, len(state.batches) + 1))
    runs = [b["run"] for b in state.batches]
    assert runs == sorted(runs)
    assert state.chain_ok
    assert state.subjects_without_template == 0  # created with their first template, or not


# ----------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_a_killed_bulk_enrolment_is_audited_batch_by_batch(
    tmp_path: Path, data_dir: Path, database_url: str | None
) -> None:
    data = tmp_path / "ws"
    env = _env(data, database_url)
    url = database_url or str(data / "faceledger.db")
    source = _orl_csv(data_dir, tmp_path / "orl.csv")
    subprocess.run(
        _cli("gallery", "create", "orl", "--legal-basis", "consent"),
        env=env,
        check=True,
        capture_output=True,
    )
    seed = int(os.environ.get("FACELEDGER_TEST_SEED", time.time()))
    print(f"kill timing seed: FACELEDGER_TEST_SEED={seed}")
    rng = random.Random(seed)
    db = open_database(url)
    try:
        for kill in range(1, KILLS + 1):
            before = _items_recorded(db)
            log = tmp_path / f"run{kill}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    _cli("enroll", "orl", source),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                _wait_for_a_commit(proc, db, before, log)
                time.sleep(rng.uniform(0.0, 0.3))  # at a commit, or anywhere in the next batch
                assert proc.poll() is None, "the job finished before it was killed"
                os.killpg(proc.pid, signal.SIGKILL)  # the enrolling process and its workers
                proc.wait()
            killed = _job_state(url)
            # what the killed runs stored is searchable, and already audited batch by batch
            assert killed.templates and killed.finals == []
            _assert_batches_cover_the_store(killed)
            assert {b["run"] for b in killed.batches} == set(range(1, kill + 1))
    finally:
        db.dispose()

    report_file = tmp_path / "report.json"
    final = subprocess.run(
        _cli("enroll", "orl", source, "--report", str(report_file)),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stderr
    state = _job_state(url)
    _assert_batches_cover_the_store(state)
    (entry,) = state.finals
    # the final entry reports the whole job, not only the run that finished it
    assert entry["enrolled"] == state.items["enrolled"] == len(state.templates) >= 190
    assert entry["rejected"] == state.items["rejected"]
    assert entry["duplicates"] == state.items["skipped_duplicate"]
    assert entry["enrolled"] + entry["rejected"] + entry["duplicates"] == entry["items"]
    assert entry["items"] == 10 * SUBJECTS
    assert entry["batches"] == len(state.batches)
    assert entry["runs"] == KILLS + 1 and entry["resumed"] is True
    rep = json.loads(report_file.read_text())
    assert entry["this_run"] == {
        "enrolled": rep["enrolled"],
        "duplicates": rep["duplicates"],
        "rejected": len(rep["rejected"]),
    }
    assert rep["enrolled"] < entry["enrolled"]  # the killed runs' templates are counted too
    (index_file,) = (data / "indexes").glob("gallery-*.index")
    assert set(load_index(index_file).ids().tolist()) == state.templates

    verified = subprocess.run(_cli("audit", "verify"), env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = subprocess.run(
        _cli("audit", "report", "--from", "2000-01-01", "--to", "2100-01-01"),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    by_op = json.loads(shown.stdout)["by_operation"]
    assert by_op["enrol_batch"] == len(state.batches) and by_op["enrol"] == 1


# ----------------------------------------------------------------------------- one transaction


@pytest.fixture(scope="module")
def sample_faces(engine: Engine) -> list[tuple[str, Template]]:
    """(image sha256, template) of two bundled sample portraits."""
    out = []
    for name in ("001_neutral.jpg", "004_neutral.jpg"):
        img = engine.load(SAMPLE / name)
        face = engine.embed(img, selection="only", enrolment=True)
        assert face.template is not None
        out.append((img.sha256, face.template))
    return out


def test_templates_commit_with_their_audit_entry_or_not_at_all(
    db_engine: sa.Engine, sample_faces: list[tuple[str, Template]], tmp_path: Path
) -> None:
    store, log = SqlStore(db_engine), AuditLog(db_engine)
    (sha0, tpl0), _ = sample_faces
    g = store.create_gallery("g", model_id=tpl0.model_id, created_by="t", legal_basis="consent")
    job = store.start_job(g.id, "src", started_by="t")
    s = store.add_subject(g.id, "001", enrolled_by="t")
    news = [
        NewTemplate(s.id, sha, tpl, item_key=f"k{i}") for i, (sha, tpl) in enumerate(sample_faces)
    ]
    rejected = [ItemOutcome("k-bad", ItemStatus.REJECTED, "no face found")]
    one = [NewTemplate(s.id, sha0, tpl0)]
    batch = AuditRecord(operation=AuditOp.ENROL_BATCH, actor="t", galleries=("g",))
    head = log.head().seq

    with pytest.raises(RuntimeError), log.writing() as conn:
        store.add_templates(news, job_id=job.id, outcomes=rejected, connection=conn)
        log.append(batch, connection=conn)
        raise RuntimeError("the process dies before the commit")
    assert store.template_ids(g.id).size == 0
    assert store.job_item_keys(job.id) == set() and log.head().seq == head

    with log.writing() as conn:
        ids = store.add_templates(news, job_id=job.id, outcomes=rejected, connection=conn)
        entry = log.append(
            AuditRecord(
                operation=AuditOp.ENROL_BATCH,
                actor="t",
                galleries=("g",),
                details={"template_ids": ids},
            ),
            connection=conn,
        )
    assert set(store.template_ids(g.id).tolist()) == set(ids)
    assert store.job_item_keys(job.id) == {"k0", "k1", "k-bad"}
    assert log.get(entry.seq).record.details["template_ids"] == ids

    # a store failure inside the transaction takes the audit entry written before it along
    with pytest.raises(Conflict), log.writing() as conn:
        log.append(batch, connection=conn)
        store.add_templates(one, connection=conn)
    assert log.head().seq == entry.seq and log.verify().ok

    other = open_database(str(tmp_path / "other.db"))
    try:
        with other.begin() as conn, pytest.raises(InvalidArgument, match="not one of"):
            store.add_templates(one, connection=conn)
    finally:
        other.dispose()
    with db_engine.connect() as conn, pytest.raises(InvalidArgument, match="transaction"):
        store.add_templates(one, connection=conn)


def test_one_image_is_enrolled_with_its_audit_entry_or_not_at_all(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(Settings(data_dir=tmp_path), engine=engine)
    try:
        ws.store.create_gallery("g", model_id=engine.card.id, created_by="t", legal_basis="consent")
        me = local_operator(ws, "t")
        request = EnrolImage("g", "001", SAMPLE / "001_neutral.jpg")
        g = ws.store.get_gallery_by_name("g")

        def unavailable(record: AuditRecord, *, connection: sa.Connection | None = None) -> None:
            raise AuditError("the audit log cannot be written")

        monkeypatch.setattr(ws.audit, "append", unavailable)
        with pytest.raises(AuditError):
            enrol_image(ws, me, request)
        monkeypatch.undo()
        assert ws.store.template_ids(g.id).size == 0  # not stored, so never searchable

        done = enrol_image(ws, me, request)
        (entry,) = ws.audit.entries(operation=AuditOp.ENROL)
        assert entry.record.details["template_id"] == done.template_id
        assert set(ws.store.template_ids(g.id).tolist()) == {done.template_id}
        assert ws.audit.verify().ok
    finally:
        ws.close()
