"""The Milvus backend against a real Milvus standalone server: erasure, and the server dying.

The index contract itself runs against the server in ``test_index_contract.py`` (backend
``milvus-server``). Here: what only a server shows.

- Erasure: a Milvus delete is a tombstone; after delete + flush + compaction the template is
  neither returned by a search nor counted among the rows Milvus stores (``num_entities``).
- Faults: the server is killed (SIGKILL) during a bulk enrolment and during searches. Every
  failure is faceledger's ``StoreError`` (HTTP 503 ``store_error``), raised within the
  client timeout, never a raw pymilvus/gRPC error or a hang. The store, committed first,
  loses nothing; on the next start the index is reconciled with it (the store is the truth),
  templates erased from the store while the server was down included.

The fault tests run on a server of their own (killed and restarted here), not on the
session's shared one.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from faceledger.api.problems import status_for
from faceledger.errors import StoreError
from faceledger.gallery.indexes import IndexManager
from faceledger.index import ExactIndex, VectorIndex
from faceledger.index.milvus_index import MilvusIndex
from faceledger.store import Gallery, NewTemplate, SqlStore
from faceledger.store.database import open_database
from faceledger.types import Template
from tests.conftest import TemplateSet
from tests.milvus_server import FAST_TICKS, MilvusServer

MODEL = "dlib-resnet-v1"
D = 128
FAULT_TIMEOUT = 5.0
"""Client timeout (seconds, retries included) of the indexes the fault tests kill under."""


def _client(uri: str) -> Any:
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri)


def _unit(n: int, seed: int) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=(n, D))
    unit: npt.NDArray[np.float32] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def _assert_store_error(exc: BaseException) -> None:
    """Exactly ``StoreError``: the API answers it with 503 ``store_error``."""
    assert type(exc) is StoreError, f"{type(exc).__name__}: {exc}"
    assert status_for(exc) == 503 and exc.code == "store_error"


# -- erasure ---------------------------------------------------------------------------------
def test_erasure_on_the_server_is_compacted_away(
    milvus_server: MilvusServer, orl_templates: TemplateSet
) -> None:
    vectors = orl_templates.vectors[:300]
    ids = np.arange(300, dtype=np.int64) * 7 + 11
    gone, kept = ids[:100], ids[100:]
    model = f"erasure-{uuid.uuid4().hex[:8]}"  # a collection of its own: its counts are ours
    index = MilvusIndex.connect(milvus_server.uri, model_id=model, dimension=D, gallery="g")
    try:
        index.add(ids, vectors)
        index.flush()  # sealed segments: what compaction rewrites
        assert index.stored_rows() == 300
        assert index.remove(gone) == 100
        index.compact(wait=120)  # flush (seals the deletes), compact, wait for completion

        assert index.stored_rows() == 200  # the rows themselves are gone, not just hidden
        client = _client(milvus_server.uri)
        try:
            assert client.get_collection_stats(index.collection)["row_count"] == 200
            count = client.query(index.collection, filter="tid >= 0", output_fields=["count(*)"])
            assert count[0]["count(*)"] == 200
            pks = [f"{index.partition}:{int(i)}" for i in gone]
            assert client.get(index.collection, ids=pks) == []
        finally:
            client.close()
        assert len(index) == 200 and not index.contains(gone).any()
        hits = index.search(vectors, 10)
        assert not np.isin(hits.ids, gone).any()
        reference = ExactIndex(D, model)
        reference.add(kept, vectors[100:])
        want = reference.search(vectors, 10)
        np.testing.assert_array_equal(hits.ids, want.ids)
    finally:
        index.close()
        client = _client(milvus_server.uri)
        client.drop_collection(index.collection)
        client.close()


# -- faults ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fault_server(
    milvus_binaries: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MilvusServer]:
    """A server of this module's own: its tests kill it, and leave it restarted. Its
    components' sessions expire 10 s (not 30 s) after a crash: the restarted server takes
    over the crashed one's collections that much sooner."""
    server = MilvusServer(
        tmp_path_factory.mktemp("milvus-faults"),
        binaries=milvus_binaries,
        settings={**FAST_TICKS, "common.session.ttl": 10},
    )
    server.start()
    yield server
    server.kill()
    server.remove_data()


class KillAfter:
    """A pymilvus client that SIGKILLs the server once ``after`` calls of ``method`` have
    returned: the next request of the same operation meets a dead server."""

    def __init__(self, client: Any, server: MilvusServer, method: str, after: int) -> None:
        self._client = client
        self._server = server
        self._method = method
        self._after = after
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            self.calls += 1
            if self.calls == self._after:
                self._server.kill()
            return out

        return call


class MilvusIndexes(IndexManager):
    """The workspace's index manager (the store commits first; the index is its cache,
    reconciled on opening and whenever the store's generation moved) with each gallery in a
    partition of a Milvus server instead of a file. Only the making of an index differs: the
    manager opens the gallery's partition as it is, and its own ``get`` reconciles it."""

    def __init__(self, store: SqlStore, folder: Path, client: Any, timeout: float) -> None:
        super().__init__(store, folder)
        self.client = client
        self.timeout = timeout

    def _new(self, gallery: Gallery, dimension: int) -> VectorIndex:
        idx = MilvusIndex(
            self.client,
            model_id=gallery.model_id,
            dimension=dimension,
            gallery=gallery.name,
            timeout=self.timeout,
        )
        self.store.update_gallery(gallery.id, index_description=idx.describe())
        return idx


@pytest.fixture
def gallery_store(tmp_path: Path) -> tuple[SqlStore, Gallery]:
    store = SqlStore(open_database(str(tmp_path / "faceledger.db")))
    gallery = store.create_gallery(
        f"faults-{uuid.uuid4().hex[:8]}", model_id=MODEL, created_by="t", legal_basis="consent"
    )
    return store, gallery


def _enrol_in_store(
    store: SqlStore, gallery: Gallery, vectors: npt.NDArray[np.float32], per_subject: int = 100
) -> list[int]:
    """Commit templates to the store, as enrolment does before it adds them to the index."""
    subjects = [
        store.add_subject(gallery.id, f"s{i}", enrolled_by="t").id
        for i in range(-(-len(vectors) // per_subject))
    ]
    return store.add_templates(
        [
            NewTemplate(
                subjects[i // per_subject],
                hashlib.sha256(f"{gallery.name}/{i}".encode()).hexdigest(),
                Template(MODEL, v),
            )
            for i, v in enumerate(vectors)
        ]
    )


def _next_start(
    server: MilvusServer, store: SqlStore, gallery: Gallery, folder: Path
) -> tuple[MilvusIndexes, VectorIndex, Callable[[], None]]:
    """A new process's index manager on the restarted server: the gallery opened and
    reconciled with the store (default timeout: the server is still recovering)."""
    client = _client(server.uri)
    indexes = MilvusIndexes(store, folder, client, timeout=60.0)
    return indexes, indexes.get(gallery, D), client.close


def _oracle(store: SqlStore, gallery: Gallery) -> ExactIndex:
    ex = ExactIndex(D, MODEL)
    for batch in store.iter_templates(gallery.id, batch_size=4096):
        ex.add(batch.ids, batch.vectors)
    return ex


def test_server_killed_during_bulk_enrolment(
    fault_server: MilvusServer, gallery_store: tuple[SqlStore, Gallery], tmp_path: Path
) -> None:
    store, gallery = gallery_store
    vectors = _unit(6000, seed=1)  # three insert requests of 2,000 rows
    client = KillAfter(_client(fault_server.uri), fault_server, "insert", after=1)
    indexes = MilvusIndexes(store, tmp_path / "indexes", client, timeout=FAULT_TIMEOUT)
    idx = indexes.get(gallery, D)

    ids = _enrol_in_store(store, gallery, vectors)  # the store commits first
    started = time.monotonic()
    with pytest.raises(StoreError) as failure:
        indexes.add(gallery, ids, [Template(MODEL, v) for v in vectors])
    _assert_store_error(failure.value)
    assert client.calls == 1 and not fault_server.running  # killed after the first batch
    assert time.monotonic() - started < FAULT_TIMEOUT + 15  # bounded by the timeout
    # while the server is down every request fails the same way, fast; reconciling too
    requests: list[Callable[[], object]] = [
        lambda: idx.search(vectors[:2], 5),
        lambda: len(idx),
        lambda: indexes.get(gallery, D),  # the store moved on: get() reconciles first
    ]
    for request in requests:
        began = time.monotonic()
        with pytest.raises(StoreError) as again:
            request()
        _assert_store_error(again.value)
        assert time.monotonic() - began < FAULT_TIMEOUT + 15
    # nothing lost: the store has every template; meanwhile a subject is erased from it
    assert np.array_equal(np.sort(store.template_ids(gallery.id)), np.sort(ids))
    subject = store.find_subject(gallery.id, "s0")
    assert subject is not None
    erased_ids = np.array([t.id for t in store.list_templates(subject.id)], dtype=np.int64)
    store.delete_subject(subject.id)

    fault_server.start()
    survived = MilvusIndex.connect(
        fault_server.uri, model_id=MODEL, dimension=D, gallery=gallery.name
    )
    held = len(survived)
    survived.close()
    assert held == 2000  # the acknowledged batch outlived the crash; the rest never arrived
    _, reopened, close = _next_start(fault_server, store, gallery, tmp_path / "indexes")
    try:
        np.testing.assert_array_equal(reopened.ids(), np.sort(store.template_ids(gallery.id)))
        assert len(reopened) == 6000 - erased_ids.size
        assert not reopened.contains(erased_ids).any()
        queries = vectors[::300]
        hits = reopened.search(queries, 10)
        np.testing.assert_array_equal(hits.ids, _oracle(store, gallery).search(queries, 10).ids)
    finally:
        close()


def test_server_killed_during_searches(
    fault_server: MilvusServer, gallery_store: tuple[SqlStore, Gallery], tmp_path: Path
) -> None:
    store, gallery = gallery_store
    vectors = _unit(2000, seed=2)
    client = _client(fault_server.uri)
    indexes = MilvusIndexes(store, tmp_path / "indexes", client, timeout=FAULT_TIMEOUT)
    indexes.get(gallery, D)
    ids = _enrol_in_store(store, gallery, vectors)
    indexes.add(gallery, ids, [Template(MODEL, v) for v in vectors])
    idx = indexes.get(gallery, D)
    oracle = _oracle(store, gallery)
    queries = vectors[:200]
    want = oracle.search(queries, 10)

    np.testing.assert_array_equal(idx.search(queries, 10).ids, want.ids)
    killer = threading.Timer(0.5, fault_server.kill)  # lands while searches are running
    killer.start()
    failure: Exception | None = None
    took, started = 0.0, time.monotonic()
    try:
        while time.monotonic() - started < 60:
            began = time.monotonic()
            try:
                hits = idx.search(queries, 10)
            except Exception as exc:  # the test checks the type itself
                failure, took = exc, time.monotonic() - began
                break
            np.testing.assert_array_equal(hits.ids, want.ids)  # right until the server died
    finally:
        killer.join()
    assert failure is not None, "searches kept answering after the server was killed"
    _assert_store_error(failure)
    assert took < FAULT_TIMEOUT + 15

    fault_server.start()
    indexes2, reopened, close = _next_start(fault_server, store, gallery, tmp_path / "indexes")
    try:
        assert indexes2.sync(gallery, D).agreed  # already reconciled on opening: nothing lost
        np.testing.assert_array_equal(reopened.ids(), np.sort(store.template_ids(gallery.id)))
        np.testing.assert_array_equal(reopened.search(queries, 10).ids, want.ids)
    finally:
        close()
