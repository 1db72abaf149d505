"""The metadata store contract: every backend (SQLite file, real PostgreSQL 15) passes it.

PostgreSQL runs as a throw-away cluster (tests/postgres.py) started once per session; each
test gets a fresh database. Vectors are real dlib templates of ORL images where the bytes
matter (round trips, erasure, encryption); random unit vectors for pure storage mechanics.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from faceledger import Engine, Template
from faceledger.batch import embed_one
from faceledger.errors import (
    Conflict,
    EncryptionKeyError,
    IntegrityError,
    InvalidArgument,
    ModelMismatch,
    NotFound,
    StoreError,
)
from faceledger.store import (
    Counts,
    ItemOutcome,
    ItemStatus,
    LegalBasis,
    NewTemplate,
    SqlStore,
    TemplateCipher,
    erased_item_key,
    generate_key,
    open_database,
    write_transaction,
)
from faceledger.store.database import sqlite_path
from faceledger.store.schema import store_meta, templates
from faceledger.store.validate import MAX_RETENTION_HOURS
from tests.postgres import PostgresCluster

MODEL = "dlib-resnet-v1"

# ----------------------------------------------------------------------------- fixtures


@dataclass
class Backend:
    name: str
    url: str
    cluster: PostgresCluster | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "store.db"))
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    schema = f"t_{uuid.uuid4().hex[:12]}"  # a fresh schema per test: isolated and cheap
    yield Backend("postgresql", cluster.create_schema(schema), cluster)
    cluster.drop_schema(schema)


@pytest.fixture
def db(backend: Backend) -> Iterator[sa.Engine]:
    engine = open_database(backend.url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(db: sa.Engine) -> SqlStore:
    return SqlStore(db)


@dataclass(frozen=True)
class RealFace:
    subject: str
    sha256: str
    template: Template


@pytest.fixture(scope="session")
def orl_sample(engine: Engine, data_dir: Path) -> list[RealFace]:
    """Real templates of 3 ORL subjects, 3 images each (embedded in-process: seconds, where the
    full ``orl_templates`` set takes minutes on a 2-core machine)."""
    faces = []
    for subject in ("s1", "s2", "s3"):
        for path in sorted((data_dir / "orl" / subject).glob("*.pgm"))[:3]:
            out = embed_one(engine, str(path))
            assert out.result is not None and out.result.template is not None, out.message
            assert out.sha256 is not None
            faces.append(RealFace(subject, out.sha256, out.result.template))
    return faces


def unit_template(rng: np.random.Generator, dim: int = 128, model: str = MODEL) -> Template:
    v = rng.standard_normal(dim).astype(np.float32)
    return Template(model, v / np.linalg.norm(v))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_gallery(store: SqlStore, name: str = "watchlist", **kw: object) -> int:
    kw.setdefault("legal_basis", "statute")
    g = store.create_gallery(name, model_id=MODEL, created_by="admin", **kw)  # type: ignore[arg-type]
    return g.id


def enrol(
    store: SqlStore, gallery_id: int, external_id: str, n: int, rng: np.random.Generator
) -> tuple[int, list[int]]:
    s = store.add_subject(gallery_id, external_id, enrolled_by="enroller")
    ids = store.add_templates(
        [
            NewTemplate(s.id, sha(f"{gallery_id}/{external_id}/{i}"), unit_template(rng))
            for i in range(n)
        ]
    )
    return s.id, ids


# ----------------------------------------------------------------------------- galleries


def test_gallery_create_get_list_update(store: SqlStore) -> None:
    g = store.create_gallery(
        "  Custody images ",
        model_id=MODEL,
        created_by="admin",
        legal_basis=LegalBasis.STATUTE,
        description="arrests 2024",
        retention_days=365,
        index_description={"backend": "faiss", "params": {"m": 32}},
    )
    assert g.name == "Custody images"
    assert g.created_at.tzinfo is not None and abs(g.created_at - datetime.now(UTC)) < timedelta(
        minutes=1
    )
    assert store.get_gallery(g.id) == g
    assert store.get_gallery_by_name("Custody images") == g
    other = store.create_gallery("Staff", model_id=MODEL, created_by="admin", legal_basis="consent")
    assert [x.name for x in store.list_galleries()] == ["Custody images", "Staff"]
    updated = store.update_gallery(g.id, retention_days=None, index_description={"backend": "x"})
    assert updated.retention_days is None and updated.index_description == {"backend": "x"}
    assert updated.description == "arrests 2024"
    assert store.get_gallery(other.id).legal_basis is LegalBasis.CONSENT


def test_gallery_errors(store: SqlStore) -> None:
    make_gallery(store, "g")
    with pytest.raises(Conflict):
        make_gallery(store, "g")
    with pytest.raises(NotFound):
        store.get_gallery(999)
    with pytest.raises(NotFound):
        store.get_gallery_by_name("nope")
    with pytest.raises(InvalidArgument, match="legal basis"):
        make_gallery(store, "h", legal_basis="because")
    with pytest.raises(InvalidArgument, match="retention"):
        make_gallery(store, "h", retention_days=0)
    with pytest.raises(InvalidArgument, match="empty"):
        make_gallery(store, "   ")
    with pytest.raises(InvalidArgument, match="JSON"):
        make_gallery(store, "h", index_description={"x": float("nan")})
    assert store.counts().galleries == 1


# ----------------------------------------------------------------------------- subjects


def test_subject_lifecycle(store: SqlStore) -> None:
    gid = make_gallery(store)
    s = store.add_subject(
        gid,
        "A-17",
        enrolled_by="enroller",
        display_name="Ann Example",
        attributes={"dob": "1990-01-01", "tags": ["x", 1]},
        source="booking system",
    )
    assert s.legal_basis is LegalBasis.STATUTE  # the gallery's default
    assert s.attributes == {"dob": "1990-01-01", "tags": ["x", 1]}
    assert store.get_subject(s.id) == s
    assert store.find_subject(gid, "A-17") == s
    assert store.find_subject(gid, "A-18") is None
    assert store.get_subjects([s.id, 12345]) == {s.id: s}
    u = store.update_subject(s.id, display_name=None, legal_basis="warrant", attributes={})
    assert (u.display_name, u.legal_basis, u.attributes, u.source) == (
        None,
        LegalBasis.WARRANT,
        {},
        "booking system",
    )
    with pytest.raises(NotFound):
        store.update_subject(999, display_name="x")


def test_duplicate_external_id_is_a_conflict_only_within_a_gallery(store: SqlStore) -> None:
    g1, g2 = make_gallery(store, "one"), make_gallery(store, "two")
    store.add_subject(g1, "X", enrolled_by="e")
    with pytest.raises(Conflict):
        store.add_subject(g1, "X", enrolled_by="e")
    assert store.add_subject(g2, "X", enrolled_by="e").gallery_id == g2
    again, created = store.ensure_subject(g1, "X", enrolled_by="e")
    assert not created and again == store.find_subject(g1, "X")
    fresh, created = store.ensure_subject(g1, "Y", enrolled_by="e")
    assert created and fresh.external_id == "Y"
    with pytest.raises(NotFound):
        store.add_subject(999, "Z", enrolled_by="e")
    assert store.counts().subjects == 3


def test_ensure_subject_under_concurrent_writers(store: SqlStore) -> None:
    gid = make_gallery(store)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            barrier.wait()
            s, created = store.ensure_subject(gid, "same-person", enrolled_by="e")
            results.append((s.id, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({sid for sid, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_pagination_visits_every_subject_once(store: SqlStore) -> None:
    gid = make_gallery(store)
    other = make_gallery(store, "other")
    made = [store.add_subject(gid, f"p{i:02d}", enrolled_by="e").id for i in range(23)]
    store.add_subject(other, "elsewhere", enrolled_by="e")
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_subjects(gid, limit=10, cursor=cursor)
        pages += 1
        seen.extend(s.id for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and seen == made
    exact = store.list_subjects(gid, limit=23)
    assert len(exact.items) == 23 and exact.next_cursor is None
    with pytest.raises(InvalidArgument):
        store.list_subjects(gid, cursor="abc")
    with pytest.raises(InvalidArgument):
        store.list_subjects(gid, limit=0)
    with pytest.raises(NotFound):
        store.list_subjects(999)


# ----------------------------------------------------------------------------- templates


def test_real_templates_round_trip_exactly(store: SqlStore, orl_sample: list[RealFace]) -> None:
    gid = make_gallery(store)
    subject_ids = {
        name: store.add_subject(gid, name, enrolled_by="e").id
        for name in sorted({f.subject for f in orl_sample})
    }
    ids = store.add_templates(
        [
            NewTemplate(
                subject_ids[f.subject],
                f.sha256,
                f.template,
                quality_score=87.5,
                quality={"sharpness": 120.0, "flags": []},
            )
            for f in orl_sample
        ]
    )
    assert len(ids) == len(orl_sample) and ids == sorted(ids)
    got = store.get_templates([*reversed(ids), 10**9])
    assert set(got) == set(ids)
    for tid, face in zip(ids, orl_sample, strict=True):
        t = got[tid]
        assert t.vector.dtype == np.float32
        assert np.array_equal(t.vector, face.template.vector)
        assert t.info.subject_id == subject_ids[face.subject]
        assert t.info.image_sha256 == face.sha256
        assert t.info.quality == {"sharpness": 120.0, "flags": []}
        assert t.info.dimension == 128 and not t.info.encrypted
        assert t.template.similarity(face.template) == pytest.approx(1.0, abs=1e-6)
        assert store.has_image(gid, face.sha256)
    assert not store.has_image(gid, sha("never enrolled"))
    s1 = store.list_templates(subject_ids["s1"])
    assert [i.image_sha256 for i in s1] == [f.sha256 for f in orl_sample if f.subject == "s1"]
    empty = store.add_subject(gid, "no templates", enrolled_by="e").id
    wanted = [*subject_ids.values(), empty, 10**9]
    counts = store.template_counts(wanted)
    assert set(counts) == set(wanted)
    for name, sid in subject_ids.items():
        held = sum(f.subject == name for f in orl_sample)
        assert counts[sid] == held == len(store.list_templates(sid))
    assert counts[empty] == 0 and counts[10**9] == 0
    with pytest.raises(InvalidArgument):
        store.template_counts(["1"])


def test_template_validation(store: SqlStore) -> None:
    rng = np.random.default_rng(0)
    gid = make_gallery(store)
    sid = store.add_subject(gid, "a", enrolled_by="e").id
    with pytest.raises(ModelMismatch):
        store.add_template(NewTemplate(sid, sha("1"), unit_template(rng, model="other-model")))
    store.add_template(NewTemplate(sid, sha("2"), unit_template(rng)))
    with pytest.raises(ModelMismatch, match="dimensional"):
        store.add_template(NewTemplate(sid, sha("3"), unit_template(rng, dim=64)))
    with pytest.raises(NotFound):
        store.add_template(NewTemplate(424242, sha("4"), unit_template(rng)))
    bad = np.full(128, np.nan, dtype=np.float32)
    with pytest.raises(InvalidArgument, match="NaN"):
        store.add_template(NewTemplate(sid, sha("5"), Template(MODEL, bad)))
    with pytest.raises(InvalidArgument, match="sha256"):
        store.add_template(NewTemplate(sid, "not-a-hash", unit_template(rng)))
    with pytest.raises(InvalidArgument, match="job_id"):
        store.add_template(NewTemplate(sid, sha("6"), unit_template(rng), item_key="a.jpg"))
    assert store.counts(gid).templates == 1


def test_duplicate_image_is_refused_per_gallery(store: SqlStore) -> None:
    rng = np.random.default_rng(1)
    g1, g2 = make_gallery(store, "one"), make_gallery(store, "two")
    a = store.add_subject(g1, "a", enrolled_by="e").id
    b = store.add_subject(g1, "b", enrolled_by="e").id
    c = store.add_subject(g2, "c", enrolled_by="e").id
    store.add_template(NewTemplate(a, sha("img"), unit_template(rng)))
    with pytest.raises(Conflict, match="already holds image"):
        store.add_template(NewTemplate(b, sha("img"), unit_template(rng)))
    with pytest.raises(Conflict, match="twice"):
        store.add_templates(
            [
                NewTemplate(b, sha("x"), unit_template(rng)),
                NewTemplate(b, sha("x"), unit_template(rng)),
            ]
        )
    store.add_template(NewTemplate(c, sha("img"), unit_template(rng)))  # another gallery: fine
    assert (store.counts(g1).templates, store.counts(g2).templates) == (1, 1)


def test_a_failing_batch_writes_nothing(store: SqlStore) -> None:
    rng = np.random.default_rng(2)
    gid = make_gallery(store)
    sid = store.add_subject(gid, "a", enrolled_by="e").id
    job = store.start_job(gid, "/data/folder", started_by="e")
    store.add_template(NewTemplate(sid, sha("existing"), unit_template(rng)))
    batch = [
        NewTemplate(sid, sha("new-1"), unit_template(rng), item_key="new-1.jpg"),
        NewTemplate(sid, sha("new-2"), unit_template(rng), item_key="new-2.jpg"),
        NewTemplate(sid, sha("existing"), unit_template(rng), item_key="dup.jpg"),
    ]
    with pytest.raises(Conflict):
        store.add_templates(
            batch,
            job_id=job.id,
            outcomes=[ItemOutcome("bad.jpg", ItemStatus.REJECTED, "no_face")],
        )
    assert store.counts(gid).templates == 1
    assert not store.has_image(gid, sha("new-1"))
    assert store.job_item_keys(job.id) == set()
    # the same batch without the duplicate goes in whole
    ids = store.add_templates(batch[:2], job_id=job.id)
    assert len(ids) == 2 and store.job_item_keys(job.id) == {"new-1.jpg", "new-2.jpg"}


class _FailingCipher(TemplateCipher):
    """Fault injection: a real cipher that raises on its third encryption, i.e. after rows of
    the batch were already inserted in the open transaction."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self.calls = 0

    def encrypt(self, template_id: int, model_id: str, plaintext: bytes) -> bytes:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("injected failure mid-batch")
        return super().encrypt(template_id, model_id, plaintext)


def test_an_exception_mid_transaction_rolls_back_every_row(db: sa.Engine) -> None:
    rng = np.random.default_rng(3)
    key = generate_key()
    store = SqlStore(db, cipher=_FailingCipher(key))
    gid = make_gallery(store)
    sid = store.add_subject(gid, "a", enrolled_by="e").id
    job = store.start_job(gid, "src", started_by="e")
    batch = [NewTemplate(sid, sha(f"m{i}"), unit_template(rng), item_key=f"m{i}") for i in range(5)]
    with pytest.raises(RuntimeError, match="injected"):
        store.add_templates(batch, job_id=job.id)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(templates)).scalar_one() == 0
    assert store.job_item_keys(job.id) == set()
    # nothing half-written: the same batch succeeds afterwards and reads back
    ids = SqlStore(db, cipher=TemplateCipher(key)).add_templates(batch, job_id=job.id)
    got = SqlStore(db, cipher=TemplateCipher(key)).get_templates(ids)
    for tid, new in zip(ids, batch, strict=True):
        assert np.array_equal(got[tid].vector, new.template.vector)


def test_iter_templates_and_ids_cover_the_gallery(store: SqlStore) -> None:
    rng = np.random.default_rng(4)
    gid = make_gallery(store)
    other = make_gallery(store, "other")
    vectors: dict[int, np.ndarray] = {}
    subject_of: dict[int, int] = {}
    for p in range(6):
        sid = store.add_subject(gid, f"p{p}", enrolled_by="e").id
        news = [NewTemplate(sid, sha(f"{p}/{i}"), unit_template(rng)) for i in range(5)]
        for tid, n in zip(store.add_templates(news), news, strict=True):
            vectors[tid] = n.template.vector
            subject_of[tid] = sid
    enrol(store, other, "x", 3, rng)
    batches = list(store.iter_templates(gid, batch_size=7))
    assert [len(b) for b in batches] == [7, 7, 7, 7, 2]
    ids = np.concatenate([b.ids for b in batches])
    assert ids.tolist() == sorted(vectors) == store.template_ids(gid).tolist()
    for b in batches:
        assert b.vectors.shape == (len(b), 128) and b.vectors.dtype == np.float32
        for row, (tid, s) in enumerate(zip(b.ids.tolist(), b.subject_ids.tolist(), strict=True)):
            assert np.array_equal(b.vectors[row], vectors[tid]) and s == subject_of[tid]
    assert list(store.iter_templates(make_gallery(store, "empty"))) == []
    with pytest.raises(NotFound):
        list(store.iter_templates(999))


def test_template_ids_are_never_reused(store: SqlStore) -> None:
    rng = np.random.default_rng(5)
    gid = make_gallery(store)
    sid, ids = enrol(store, gid, "a", 3, rng)
    removed = store.delete_template(ids[-1])
    assert removed.template_ids == (ids[-1],)
    with pytest.raises(NotFound):
        store.delete_template(ids[-1])
    new_id = store.add_template(NewTemplate(sid, sha("after"), unit_template(rng)))
    assert new_id > ids[-1]
    assert store.get_templates([ids[-1]]) == {}


# ----------------------------------------------------------------------------- deletion


def test_delete_subject_cascades_and_reports(store: SqlStore) -> None:
    rng = np.random.default_rng(6)
    gid = make_gallery(store)
    job = store.start_job(gid, "src", started_by="e")
    a = store.add_subject(gid, "a", enrolled_by="e")
    _, b_tpl = enrol(store, gid, "b", 2, rng)
    a_new = [
        NewTemplate(a.id, sha(f"a{i}"), unit_template(rng), item_key=f"a{i}") for i in range(3)
    ]
    a_tpl = store.add_templates(a_new, job_id=job.id)
    removed = store.delete_subject(a.id)
    assert removed.subjects == (a,)
    assert removed.template_ids == tuple(a_tpl)
    assert removed.image_sha256s == tuple(sha(f"a{i}") for i in range(3))
    with pytest.raises(NotFound):
        store.get_subject(a.id)
    assert store.get_templates(a_tpl) == {}
    assert not store.has_image(gid, sha("a0"))
    assert store.counts(gid).subjects == 1 and store.counts(gid).templates == 2
    assert set(store.get_templates(b_tpl)) == set(b_tpl)
    # the job still knows the items were handled (a resume must not re-enrol), unlinked and
    # under a hash of their keys (a key is often a path naming the person)
    items = store.list_job_items(job.id)
    assert {i.item_key for i in items} == {erased_item_key(f"a{i}") for i in range(3)}
    assert all(i.reason == "subject erased" for i in items)
    assert all(i.template_id is None and i.status is ItemStatus.ENROLLED for i in items)
    with pytest.raises(NotFound):
        store.delete_subject(a.id)


def test_delete_subject_reports_every_template_added_concurrently(store: SqlStore) -> None:
    rng = np.random.default_rng(14)
    gid = make_gallery(store)
    sid = store.add_subject(gid, "busy", enrolled_by="e").id
    added: list[int] = []
    failures: list[BaseException] = []
    started = threading.Event()

    def keep_adding() -> None:
        for i in range(10_000):
            try:
                added.append(store.add_template(NewTemplate(sid, sha(f"c{i}"), unit_template(rng))))
            except NotFound:
                return  # the subject is gone: the expected end
            except BaseException as exc:
                failures.append(exc)
                return
            started.set()

    adder = threading.Thread(target=keep_adding)
    adder.start()
    assert started.wait(30)
    time.sleep(0.05)
    removed = store.delete_subject(sid)
    adder.join(60)
    assert failures == [] and not adder.is_alive()
    assert added and set(added) <= set(removed.template_ids)
    assert store.get_templates(added) == {} and store.counts(gid).templates == 0


def test_delete_gallery_cascades_to_everything(store: SqlStore) -> None:
    rng = np.random.default_rng(7)
    gid = make_gallery(store)
    keep = make_gallery(store, "keep")
    job = store.start_job(gid, "src", started_by="e")
    s = store.add_subject(gid, "a", enrolled_by="e")
    tids = store.add_templates(
        [NewTemplate(s.id, sha("1"), unit_template(rng), item_key="1")], job_id=job.id
    )
    _, b_tpl = enrol(store, gid, "b", 2, rng)
    _, kept = enrol(store, keep, "k", 2, rng)
    removed = store.delete_gallery(gid)
    assert sorted(removed.template_ids) == sorted(tids + b_tpl)
    assert [x.external_id for x in removed.subjects] == ["a", "b"]
    with pytest.raises(NotFound):
        store.get_gallery(gid)
    with pytest.raises(NotFound):
        store.get_job(job.id)
    assert store.get_templates(tids + b_tpl) == {}
    assert store.counts().galleries == 1
    assert store.counts().subjects == 1 and store.counts().templates == 2
    assert set(store.get_templates(kept)) == set(kept)


# ----------------------------------------------------------------------------- jobs


def test_job_records_and_resume_keys(store: SqlStore) -> None:
    rng = np.random.default_rng(8)
    gid = make_gallery(store)
    other = make_gallery(store, "other")
    stranger = store.add_subject(other, "z", enrolled_by="e").id
    job = store.start_job(gid, " /data/orl ", started_by="enroller")
    assert job.source == "/data/orl" and job.finished_at is None
    assert store.find_open_job(gid, "/data/orl") == job
    assert store.find_open_job(gid, "/elsewhere") is None
    sid = store.add_subject(gid, "s1", enrolled_by="e").id
    tid = store.add_template(
        NewTemplate(sid, sha("1"), unit_template(rng), item_key="s1/1.pgm"), job_id=job.id
    )
    store.record_outcomes(
        job.id,
        [
            ItemOutcome("s1/2.pgm", ItemStatus.REJECTED, "no_face: no face found"),
            ItemOutcome("s1/3.pgm", ItemStatus.SKIPPED_DUPLICATE, f"same image as template {tid}"),
        ],
    )
    assert store.job_item_keys(job.id) == {"s1/1.pgm", "s1/2.pgm", "s1/3.pgm"}
    rejected = store.list_job_items(job.id, status=ItemStatus.REJECTED)
    assert [(i.item_key, i.reason, i.template_id) for i in rejected] == [
        ("s1/2.pgm", "no_face: no face found", None)
    ]
    (enrolled,) = store.list_job_items(job.id, status=ItemStatus.ENROLLED)
    assert enrolled.template_id == tid
    with pytest.raises(Conflict, match="already recorded"):
        store.record_outcomes(job.id, [ItemOutcome("s1/2.pgm", ItemStatus.REJECTED)])
    with pytest.raises(InvalidArgument, match="enrolled"):
        store.record_outcomes(job.id, [ItemOutcome("s1/4.pgm", ItemStatus.ENROLLED)])
    with pytest.raises(InvalidArgument, match="gallery of the job"):
        store.add_template(
            NewTemplate(stranger, sha("z"), unit_template(rng), item_key="z"), job_id=job.id
        )
    finished = store.finish_job(job.id)
    assert finished.finished_at is not None
    assert store.find_open_job(gid, "/data/orl") is None
    with pytest.raises(Conflict, match="finished"):
        store.record_outcomes(job.id, [ItemOutcome("late", ItemStatus.REJECTED)])
    with pytest.raises(Conflict):
        store.finish_job(job.id)
    with pytest.raises(NotFound):
        store.job_item_keys(999)


def _crash_worker(url: str, total: int, batches: Any, limit: Any, errors: Path) -> None:
    try:
        _enrol_until_done(url, total, batches, limit)
    except BaseException:
        errors.write_text(traceback.format_exc())
        raise


def _enrol_until_done(url: str, total: int, batches: Any, limit: Any) -> None:
    """A bulk enrolment in a forked child: resumes the open job, skipping recorded items, and
    counts its committed batches in ``batches`` (shared memory) so the parent can aim. It starts
    no batch past ``limit``: on a loaded machine the parent may be descheduled for a while, and
    the child must not finish the whole job before the kill it was meant to take."""
    engine = open_database(url)  # its own connections: never the parent's pooled ones
    store = SqlStore(engine)
    try:
        gid = store.get_gallery_by_name("crash").id
    except NotFound:
        gid = make_gallery(store, "crash")
    if any(j.finished_at is not None for j in store.list_jobs(gid)):
        return  # killed after finishing, before exiting: nothing left to do
    job = store.find_open_job(gid, "crash-source") or store.start_job(
        gid, "crash-source", started_by="t"
    )
    done = store.job_item_keys(job.id)
    subjects: dict[str, int] = {}
    todo = [i for i in range(total) if f"item-{i}" not in done]
    for start in range(0, len(todo), 4):
        while batches.value >= limit.value:
            time.sleep(0.001)  # waits for the kill
        news, outcomes = [], []
        for i in todo[start : start + 4]:
            if i % 7 == 3:
                outcomes.append(ItemOutcome(f"item-{i}", ItemStatus.REJECTED, "no_face"))
                continue
            name = f"person-{i % 9}"
            if name not in subjects:
                subjects[name] = store.ensure_subject(gid, name, enrolled_by="t")[0].id
            vec = np.random.default_rng(i).standard_normal(128).astype(np.float32)
            news.append(
                NewTemplate(
                    subjects[name], sha(f"img-{i}"), Template(MODEL, vec), item_key=f"item-{i}"
                )
            )
        store.add_templates(news, job_id=job.id, outcomes=outcomes)
        batches.value += 1
    store.finish_job(job.id)
    engine.dispose()


def _job_progress(url: str) -> tuple[int, bool]:
    """Items recorded so far, and whether the job is finished."""
    engine = open_database(url)
    try:
        store = SqlStore(engine)
        (job,) = store.list_jobs(store.get_gallery_by_name("crash").id)
        return len(store.job_item_keys(job.id)), job.finished_at is not None
    finally:
        engine.dispose()


def test_sigkill_at_random_moments_leaves_a_consistent_resumable_store(
    backend: Backend, tmp_path: Path
) -> None:
    # fork, not a fresh interpreter: the child starts in milliseconds with everything imported
    ctx = multiprocessing.get_context("fork")
    # 50 batches of 4; each kill lands after 1-6 batches of a run, within the 2 batches after the
    # one aimed at: at most 5 x 8 = 40 batches before the last run, so every kill hits open work
    total, kills = 200, 5
    progress: list[int] = []  # items recorded after each kill
    rnd = random.Random(9)
    errors = tmp_path / "worker-error.txt"
    for attempt in range(kills + 1):
        batches = ctx.Value("i", 0)
        target = rnd.randint(1, 6)
        limit = ctx.Value("i", target + 2 if attempt < kills else total)
        proc = ctx.Process(target=_crash_worker, args=(backend.url, total, batches, limit, errors))
        proc.start()
        if attempt < kills:
            deadline = time.monotonic() + 30
            while batches.value < target and proc.is_alive() and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(rnd.uniform(0.0, 0.02))  # somewhere inside the next transaction(s)
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(60)
        assert proc.exitcode in (0, -signal.SIGKILL), errors.read_text() if errors.exists() else ""
        recorded, finished = _job_progress(backend.url)
        if attempt < kills:
            assert not finished and 0 < recorded < total, "a kill missed the work"
            progress.append(recorded)
    assert progress == sorted(progress), progress  # nothing recorded was ever lost
    engine = open_database(backend.url)
    try:
        store = SqlStore(engine)
        gid = store.get_gallery_by_name("crash").id
        (job,) = store.list_jobs(gid)
        assert job.finished_at is not None
        items = {i.item_key: i for i in store.list_job_items(job.id)}
        assert set(items) == {f"item-{i}" for i in range(total)}
        enrolled = {k: i for k, i in items.items() if i.status is ItemStatus.ENROLLED}
        assert len(enrolled) == total - len([i for i in range(total) if i % 7 == 3])
        tids = store.template_ids(gid).tolist()
        assert sorted(i.template_id for i in enrolled.values()) == tids  # exactly once each
        got = store.get_templates(tids)
        for key, item in enrolled.items():
            assert item.template_id is not None
            i = int(key.split("-")[1])
            assert got[item.template_id].info.image_sha256 == sha(f"img-{i}")
        assert store.counts(gid).subjects == 9
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- encryption


def test_encrypted_templates_round_trip_and_are_opaque_at_rest(
    db: sa.Engine, orl_sample: list[RealFace]
) -> None:
    cipher = TemplateCipher(generate_key())
    store = SqlStore(db, cipher=cipher)
    gid = make_gallery(store)
    sid = store.add_subject(gid, "s1", enrolled_by="e").id
    faces = orl_sample[:3]
    ids = store.add_templates([NewTemplate(sid, f.sha256, f.template) for f in faces])
    got = store.get_templates(ids)
    for tid, f in zip(ids, faces, strict=True):
        assert got[tid].info.encrypted
        assert np.array_equal(got[tid].vector, f.template.vector)
    (batch,) = store.iter_templates(gid)
    assert np.array_equal(batch.vectors, np.stack([f.template.vector for f in faces]))
    with db.connect() as conn:
        stored = dict(conn.execute(sa.select(templates.c.id, templates.c.vector)).all())
    for tid, f in zip(ids, faces, strict=True):
        plain = f.template.to_bytes()
        assert plain not in bytes(stored[tid]) and len(stored[tid]) == 12 + len(plain) + 16
    store.check_encryption()


def test_wrong_or_missing_key_is_a_clear_error_never_a_vector(db: sa.Engine) -> None:
    rng = np.random.default_rng(10)
    writer = SqlStore(db, cipher=TemplateCipher(generate_key()))
    gid = make_gallery(writer)
    sid, ids = enrol(writer, gid, "a", 2, rng)
    for reader in (SqlStore(db), SqlStore(db, cipher=TemplateCipher(generate_key()))):
        with pytest.raises(EncryptionKeyError):
            reader.get_templates(ids)
        with pytest.raises(EncryptionKeyError):
            list(reader.iter_templates(gid))
        with pytest.raises(EncryptionKeyError):
            reader.export_subject(sid)
        with pytest.raises(EncryptionKeyError):
            reader.check_encryption()
        # metadata and deletion need no key
        assert [t.id for t in reader.list_templates(sid)] == ids


def test_ciphertext_moved_to_another_row_fails_authentication(db: sa.Engine) -> None:
    rng = np.random.default_rng(11)
    store = SqlStore(db, cipher=TemplateCipher(generate_key()))
    gid = make_gallery(store)
    _, ids = enrol(store, gid, "a", 2, rng)
    with write_transaction(db) as conn:
        blob = conn.execute(sa.select(templates.c.vector).where(templates.c.id == ids[0])).scalar()
        conn.execute(templates.update().where(templates.c.id == ids[1]).values(vector=blob))
    assert set(store.get_templates([ids[0]])) == {ids[0]}
    with pytest.raises(IntegrityError, match="authentication"):
        store.get_templates([ids[1]])


def test_plaintext_rows_are_refused_under_a_key_until_migrated(db: sa.Engine) -> None:
    rng = np.random.default_rng(12)
    plain = SqlStore(db)
    gid = make_gallery(plain)
    _, ids = enrol(plain, gid, "a", 3, rng)
    before = plain.get_templates(ids)
    keyed = SqlStore(db, cipher=TemplateCipher(generate_key()))
    with pytest.raises(EncryptionKeyError, match="unencrypted"):
        keyed.get_templates(ids)
    assert keyed.encrypt_stored_templates() == 3
    after = keyed.get_templates(ids)
    for tid in ids:
        assert after[tid].info.encrypted
        assert np.array_equal(after[tid].vector, before[tid].vector)
    keyed.check_encryption()
    assert keyed.encrypt_stored_templates() == 0


# ----------------------------------------------------------------------------- export, retention


def test_export_subject_holds_everything_and_is_json(
    store: SqlStore, orl_sample: list[RealFace]
) -> None:
    gid = make_gallery(store, retention_days=30)
    job = store.start_job(gid, "/data/orl", started_by="e")
    s = store.add_subject(
        gid, "s2", enrolled_by="e", display_name="Subject Two", attributes={"case": "C-1"}
    )
    faces = [f for f in orl_sample if f.subject == "s2"]
    ids = store.add_templates(
        [NewTemplate(s.id, f.sha256, f.template, item_key=f"s2/{i}") for i, f in enumerate(faces)],
        job_id=job.id,
    )
    doc = json.loads(json.dumps(store.export_subject(s.id)))
    assert doc["subject"]["external_id"] == "s2" and doc["subject"]["attributes"] == {"case": "C-1"}
    assert doc["subject"]["legal_basis"] == "statute"
    assert doc["gallery"]["name"] == "watchlist" and doc["gallery"]["retention_days"] == 30
    assert [t["id"] for t in doc["templates"]] == ids
    for t, f in zip(doc["templates"], faces, strict=True):
        v = np.frombuffer(base64.b64decode(t["vector"]), dtype="<f4")
        assert np.array_equal(v, f.template.vector) and t["image_sha256"] == f.sha256
    assert [r["item_key"] for r in doc["enrolment_records"]] == [f"s2/{i}" for i in range(3)]
    assert {r["job_source"] for r in doc["enrolment_records"]} == {"/data/orl"}
    with pytest.raises(NotFound):
        store.export_subject(10**6)


def test_expired_subjects_follow_the_gallery_retention(db: sa.Engine) -> None:
    now = [datetime(2024, 1, 1, tzinfo=UTC)]
    store = SqlStore(db, clock=lambda: now[0])
    short = make_gallery(store, "short", retention_days=30)
    forever = make_gallery(store, "forever")
    old = store.add_subject(short, "old", enrolled_by="e")
    store.add_subject(forever, "kept", enrolled_by="e")
    now[0] += timedelta(days=20)
    store.add_subject(short, "young", enrolled_by="e")
    assert store.list_expired_subjects(now=now[0] + timedelta(days=5)) == []
    later = now[0] + timedelta(days=11)  # old is 31 days old, young 11
    assert store.list_expired_subjects(now=later) == [old]
    assert store.list_expired_subjects(now=later, gallery_id=forever) == []
    assert old.enrolled_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_expired_subjects_follow_a_retention_period_in_hours(db: sa.Engine) -> None:
    t0 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    now = [t0]
    store = SqlStore(db, clock=lambda: now[0])
    flight = make_gallery(store, "flight", retention_hours=12)
    daily = make_gallery(store, "daily", retention_days=1)
    old = store.add_subject(flight, "old", enrolled_by="e")
    store.add_subject(daily, "kept", enrolled_by="e")
    now[0] = t0 + timedelta(hours=2)
    store.add_subject(flight, "young", enrolled_by="e")
    assert store.get_gallery(flight).retention == timedelta(hours=12)
    assert store.get_gallery(flight).retention_text == "12 hours"
    assert store.list_expired_subjects(now=t0 + timedelta(hours=12)) == []  # not yet past
    # at 13 h: old is 13 h old, young 11 h; the 1-day gallery's subject is kept
    assert store.list_expired_subjects(now=t0 + timedelta(hours=13)) == [old]
    assert store.list_expired_subjects(now=t0 + timedelta(hours=13), gallery_id=daily) == []
    doc = store.export_subject(old.id)
    assert (doc["gallery"]["retention_hours"], doc["gallery"]["retention_days"]) == (12, None)


def test_a_retention_period_is_in_days_or_hours_and_bounded(store: SqlStore) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"retention_days": 1, "retention_hours": 1}, "days or in hours, not both"),
        ({"retention_hours": 0}, "retention_hours"),
        ({"retention_hours": -12}, "retention_hours"),
        ({"retention_hours": MAX_RETENTION_HOURS + 1}, "87,600"),
        ({"retention_hours": 1.5}, "whole number of hours"),
        ({"retention_hours": True}, "whole number of hours"),
    ]
    for bad, match in cases:
        with pytest.raises(InvalidArgument, match=match):
            make_gallery(store, "bad", **bad)
    gid = make_gallery(store, "flight", retention_hours=MAX_RETENTION_HOURS)
    with pytest.raises(InvalidArgument, match="not both"):
        store.update_gallery(gid, retention_days=2, retention_hours=2)
    # a period set in one unit replaces the other; None clears only its own unit
    g = store.update_gallery(gid, retention_days=2)
    assert (g.retention_days, g.retention_hours) == (2, None)
    g = store.update_gallery(gid, retention_hours=12)
    assert (g.retention_days, g.retention_hours) == (None, 12)
    g = store.update_gallery(gid, retention_days=None)
    assert (g.retention_days, g.retention_hours, g.retention) == (None, 12, timedelta(hours=12))
    g = store.update_gallery(gid, retention_hours=None)
    assert g.retention is None and g.retention_text is None
    assert store.counts().galleries == 1


# ----------------------------------------------------------------------------- erasure on disk


# the heap, index and TOAST files of the tables holding a subject's personal data
_PG_RELATION_FILES = """
SELECT pg_relation_filepath(c.oid) FROM pg_class c
WHERE pg_relation_filepath(c.oid) IS NOT NULL AND (
    c.oid IN ('templates'::regclass, 'subjects'::regclass)
    OR c.oid IN (SELECT indexrelid FROM pg_index
                 WHERE indrelid IN ('templates'::regclass, 'subjects'::regclass))
    OR c.oid IN (SELECT reltoastrelid FROM pg_class
                 WHERE oid IN ('templates'::regclass, 'subjects'::regclass)))
"""


def test_erased_subject_bytes_are_gone_from_the_files_after_compaction(
    backend: Backend, db: sa.Engine, store: SqlStore, orl_sample: list[RealFace]
) -> None:
    gid = make_gallery(store)
    victim = store.add_subject(gid, "erase-me-7f3a9c", enrolled_by="e", display_name="Zq Erasable")
    keeper = store.add_subject(gid, "keep-me", enrolled_by="e")
    gone = [f for f in orl_sample if f.subject == "s1"]
    kept = [f for f in orl_sample if f.subject == "s2"]
    store.add_templates([NewTemplate(victim.id, f.sha256, f.template) for f in gone])
    store.add_templates([NewTemplate(keeper.id, f.sha256, f.template) for f in kept])
    secrets = [f.template.to_bytes() for f in gone] + [b"erase-me-7f3a9c", b"Zq Erasable"]

    def on_disk() -> bytes:
        if backend.cluster is None:
            path = sqlite_path(db)
            wal = path.with_name(path.name + "-wal")
            return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        with db.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")  # flush shared buffers into the files
            files = conn.execute(sa.text(_PG_RELATION_FILES)).scalars().all()
        data = backend.cluster.data_dir
        return b"".join(p.read_bytes() for f in files for p in data.glob(f + "*"))

    blob = on_disk()
    assert all(s in blob for s in secrets), "the test must see the bytes before erasure"
    store.delete_subject(victim.id)
    store.compact()
    blob = on_disk()
    for s in secrets:
        assert s not in blob
    assert all(f.template.to_bytes() in blob for f in kept)  # the search does find vectors
    if backend.cluster is None:
        wal = sqlite_path(db).with_name(sqlite_path(db).name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0


# ----------------------------------------------------------------------------- database level


def test_counts(store: SqlStore) -> None:
    rng = np.random.default_rng(13)
    g1, g2 = make_gallery(store, "one"), make_gallery(store, "two")
    enrol(store, g1, "a", 2, rng)
    enrol(store, g1, "b", 1, rng)
    enrol(store, g2, "c", 4, rng)
    assert store.counts() == Counts(2, 3, 7)
    assert (store.counts(g1).subjects, store.counts(g1).templates) == (2, 3)
    with pytest.raises(NotFound):
        store.counts(999)


def test_write_transactions_serialise_read_modify_write(db: sa.Engine) -> None:
    meta = sa.MetaData()
    counter = sa.Table("test_counter", meta, sa.Column("n", sa.Integer, nullable=False))
    meta.create_all(db)
    with write_transaction(db) as conn:
        conn.execute(counter.insert().values(n=0))

    def bump() -> None:
        for _ in range(15):
            with write_transaction(db, lock="test-counter") as conn:
                n = conn.execute(sa.select(counter.c.n)).scalar_one()
                conn.execute(counter.update().values(n=n + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.connect() as conn:
        assert conn.execute(sa.select(counter.c.n)).scalar_one() == 60


def test_another_schema_version_is_refused(db: sa.Engine) -> None:
    SqlStore(db)
    with write_transaction(db) as conn:
        conn.execute(store_meta.update().values(value="99"))
    with pytest.raises(StoreError, match="schema version 99"):
        SqlStore(db)


def test_unreachable_database_is_a_store_error(tmp_path: Path) -> None:
    engine = open_database(f"postgresql://nobody@/nodb?host={tmp_path}")
    with pytest.raises(StoreError, match="unavailable"):
        SqlStore(engine)
