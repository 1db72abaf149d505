"""The VectorIndex contract, run against every backend with the exact index as the oracle.

Data: the real dlib templates of the 400 ORL images (session fixture ``orl_templates``) plus
face-like synthetic templates fitted to them, so IVF has enough vectors to train. Every
search comparison uses the real templates as queries. Milvus runs twice: as milvus-lite (an
embedded local file) and as a real Milvus standalone server (the session's ``milvus_server``,
started from the ``milvus`` wheel's binary), one partition per test index, like one gallery
each, reached through the server's URI as a deployment would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from faceledger.errors import Conflict, IntegrityError, InvalidArgument, ModelMismatch
from faceledger.index import (
    ExactIndex,
    FaissHNSWIndex,
    FaissIVFIndex,
    VectorIndex,
    from_description,
)
from faceledger.index.milvus_index import MilvusIndex
from faceledger.index.synthetic import FaceLikeModel
from tests.milvus_server import MilvusServer

MODEL = "dlib-resnet-v1"
D = 128
K = 10

BACKENDS = [
    "exact",
    "faiss-flat",
    "faiss-ivf-sq8",
    "faiss-ivf-pq",
    "faiss-ivf-pq4fs",
    "faiss-hnsw-flat",
    "faiss-hnsw-sq8",
    "milvus-lite",
    "milvus-server",
    "scann",
]


@dataclass(frozen=True)
class Corpus:
    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    n_real: int
    """The first n_real rows are real ORL templates; the rest are synthetic."""

    @property
    def real_ids(self) -> npt.NDArray[np.int64]:
        return self.ids[: self.n_real]

    @property
    def real_vectors(self) -> npt.NDArray[np.float32]:
        return self.vectors[: self.n_real]


@pytest.fixture(scope="module")
def corpus(orl_templates: Any) -> Corpus:
    real = orl_templates.vectors
    assert real.shape[0] >= 380 and real.shape[1] == D
    model = FaceLikeModel.fit(real, orl_templates.subjects)
    rng = np.random.default_rng(7)
    synth = model.templates(model.identities(400, rng), np.repeat(np.arange(400), 4), rng)
    vectors = np.concatenate([real, synth]).astype(np.float32)
    # sparse, shuffled ids so that no backend can confuse ids with positions
    ids = rng.permutation(np.arange(vectors.shape[0], dtype=np.int64) * 13 + 1000)
    return Corpus(ids=ids, vectors=vectors, n_real=real.shape[0])


@pytest.fixture(scope="module")
def milvus_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("milvus") / "contract.db"))
    yield client
    client.close()


Factory = Callable[[], VectorIndex]


@pytest.fixture(scope="module")
def trained_ivf(corpus: Corpus) -> dict[str, FaissIVFIndex]:
    """IVF cells and codebooks trained once per module (PQ training takes seconds)."""
    out = {}
    for encoding, pq_m in (("sq8", 16), ("pq", 16), ("pq4fs", 32)):
        ivf = FaissIVFIndex(
            D,
            MODEL,
            nlist=16,
            nprobe=16,
            encoding=encoding,  # type: ignore[arg-type]
            pq_m=pq_m,
            shortlist=200,
        )
        ivf.train(corpus.vectors)
        out[encoding] = ivf
    return out


@pytest.fixture(scope="module")
def trained_scann(corpus: Corpus) -> Any:
    """A ScaNN tree trained once per module; 16 leaves all searched, so results are exact."""
    pytest.importorskip("scann", reason="ScaNN wheels exist for Linux x86-64 only")
    from faceledger.index.scann_index import ScannIndex

    index = ScannIndex(D, MODEL, leaves=16, leaves_to_search=16, reorder=200, shortlist=32)
    index.train(corpus.vectors)
    return index


@pytest.fixture(params=BACKENDS)
def make(
    request: pytest.FixtureRequest,
    milvus_client: Any,
    trained_ivf: dict[str, FaissIVFIndex],
    corpus: Corpus,
) -> Iterator[Factory]:
    """A factory of empty, ready-to-fill indexes of one backend."""
    kind: str = request.param
    galleries: list[MilvusIndex] = []

    def build() -> VectorIndex:
        if kind == "milvus-lite":
            index = MilvusIndex(
                milvus_client,
                model_id=MODEL,
                dimension=D,
                gallery=f"t-{uuid.uuid4().hex}",
                flush_on_add=True,  # milvus-lite searches unsealed rows slowly
                shortlist=24,  # FLAT is exact; milvus-lite spends its time per returned row
            )
            galleries.append(index)
            return index
        if kind == "milvus-server":
            server: MilvusServer = request.getfixturevalue("milvus_server")
            index = MilvusIndex.connect(
                server.uri,
                model_id=MODEL,
                dimension=D,
                gallery=f"t-{uuid.uuid4().hex}",  # a partition of its own per index
                shortlist=24,
            )
            galleries.append(index)
            return index
        if kind.startswith("faiss-ivf"):
            return trained_ivf[kind.rsplit("-", 1)[1]].trained_copy()
        if kind == "scann":
            scann: Any = request.getfixturevalue("trained_scann")
            return scann.trained_copy()  # type: ignore[no-any-return]
        if kind.startswith("faiss-hnsw"):
            storage = kind.rsplit("-", 1)[1]
            hnsw = FaissHNSWIndex(D, MODEL, m=16, ef_search=128, storage=storage)  # type: ignore[arg-type]
            hnsw.train(corpus.vectors)  # SQ8 value ranges (a no-op for flat storage)
            return hnsw
        return from_description({"kind": kind, "dimension": D, "model_id": MODEL, "params": {}})

    yield build
    for g in galleries:  # keep the shared collection small: one gallery lives for one test
        g.drop()
        g.close()


def oracle(ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> ExactIndex:
    ex = ExactIndex(D, MODEL)
    ex.add(ids, vectors)
    return ex


def assert_same_hits(index: VectorIndex, reference: ExactIndex, queries: Any, k: int = K) -> None:
    got = index.search(queries, k)
    want = reference.search(queries, k)
    assert got.ids.shape == want.ids.shape == (queries.shape[0], k)
    mismatched = np.flatnonzero((got.ids != want.ids).any(axis=1))
    assert mismatched.size == 0, (
        f"{mismatched.size} of {queries.shape[0]} queries differ from the oracle, "
        f"first: got {got.ids[mismatched[0]]}, want {want.ids[mismatched[0]]}"
    )
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)


@pytest.fixture
def filled(make: Factory, corpus: Corpus) -> VectorIndex:
    index = make()
    index.add(corpus.ids, corpus.vectors)
    return index


# -- adding and reading back ---------------------------------------------------------------
def test_empty_index_pads_results(make: Factory, corpus: Corpus) -> None:
    index = make()
    assert len(index) == 0
    assert index.ids().size == 0
    hits = index.search(corpus.real_vectors[:3], 5)
    assert (hits.ids == -1).all() and np.isneginf(hits.scores).all()
    assert hits.row(0) == []


def test_add_then_membership(filled: VectorIndex, corpus: Corpus) -> None:
    assert len(filled) == corpus.ids.size
    np.testing.assert_array_equal(filled.ids(), np.sort(corpus.ids))
    assert int(corpus.ids[0]) in filled
    assert 999 not in filled  # below every id used
    assert filled.contains(np.array([corpus.ids[5], 3], dtype=np.int64)).tolist() == [True, False]


def test_search_matches_exact_oracle_on_real_templates(filled: VectorIndex, corpus: Corpus) -> None:
    assert_same_hits(filled, oracle(corpus.ids, corpus.vectors), corpus.real_vectors)


def test_single_queries_match_the_oracle_one_by_one(filled: VectorIndex, corpus: Corpus) -> None:
    """One query at a time takes the latency path (its own re-rank code in every backend)."""
    reference = oracle(corpus.ids, corpus.vectors)
    for i in range(0, corpus.real_vectors.shape[0], 7):
        assert_same_hits(filled, reference, corpus.real_vectors[i : i + 1])


def test_each_real_template_finds_itself_first(filled: VectorIndex, corpus: Corpus) -> None:
    hits = filled.search(corpus.real_vectors, 1)
    np.testing.assert_array_equal(hits.ids[:, 0], corpus.real_ids)
    np.testing.assert_allclose(hits.scores[:, 0], 1.0, atol=1e-5)


def test_scores_descend_and_k_beyond_size_pads(make: Factory, corpus: Corpus) -> None:
    index = make()
    index.add(corpus.real_ids[:7], corpus.real_vectors[:7])
    hits = index.search(corpus.real_vectors[:4], 12)
    assert (hits.ids[:, :7] >= 0).all() and (hits.ids[:, 7:] == -1).all()
    assert np.isneginf(hits.scores[:, 7:]).all()
    assert (np.diff(hits.scores[:, :7], axis=1) <= 0).all()
    assert sorted(int(i) for i in hits.ids[0, :7]) == sorted(int(i) for i in corpus.real_ids[:7])
    one = index.search(corpus.real_vectors[:1], 12)  # the single-query path pads the same way
    np.testing.assert_array_equal(one.ids, hits.ids[:1])
    np.testing.assert_allclose(one.scores, hits.scores[:1], rtol=0, atol=1e-6)


def test_ties_are_broken_by_ascending_id(make: Factory, corpus: Corpus) -> None:
    index = make()
    v = corpus.real_vectors[0]
    index.add(np.array([50, 20, 30, 7]), np.stack([v, v, v, corpus.real_vectors[1]]))
    hits = index.search(v[None, :], 4)
    assert hits.ids[0, :3].tolist() == [20, 30, 50]
    assert hits.scores[0, 0] == hits.scores[0, 1] == hits.scores[0, 2]
    assert hits.ids[0, 3] == 7


# -- refusals leave the index as it was ----------------------------------------------------
def test_duplicate_id_is_a_conflict_and_changes_nothing(
    filled: VectorIndex, corpus: Corpus
) -> None:
    before = filled.search(corpus.real_vectors[:20], K)
    fresh = np.array([7], dtype=np.int64)  # not in the corpus
    with pytest.raises(Conflict):
        filled.add(np.array([fresh[0], corpus.ids[3]]), corpus.vectors[[0, 3]])
    assert 7 not in filled
    assert len(filled) == corpus.ids.size
    after = filled.search(corpus.real_vectors[:20], K)
    np.testing.assert_array_equal(after.ids, before.ids)


def test_id_repeated_within_one_add_is_a_conflict(make: Factory, corpus: Corpus) -> None:
    index = make()
    with pytest.raises(Conflict):
        index.add(np.array([5, 6, 5]), corpus.real_vectors[:3])
    assert len(index) == 0


def test_wrong_dimension_is_a_model_mismatch(filled: VectorIndex, corpus: Corpus) -> None:
    short = corpus.real_vectors[:2, :64]
    short = short / np.linalg.norm(short, axis=1, keepdims=True)
    with pytest.raises(ModelMismatch):
        filled.add(np.array([1, 2]), short)
    with pytest.raises(ModelMismatch):
        filled.search(short, K)
    assert len(filled) == corpus.ids.size


@pytest.mark.parametrize(
    "case",
    ["nan", "inf", "not_unit", "zero", "negative_id", "ids_2d", "float_ids", "count_mismatch"],
)
def test_bad_input_is_invalid_argument(make: Factory, corpus: Corpus, case: str) -> None:
    index = make()
    ids: Any = np.array([1, 2], dtype=np.int64)
    vecs: Any = corpus.real_vectors[:2].copy()
    if case == "nan":
        vecs[1, 5] = np.nan
    elif case == "inf":
        vecs[0, 0] = np.inf
    elif case == "not_unit":
        vecs = vecs * 2.0
    elif case == "zero":
        vecs[1] = 0.0
    elif case == "negative_id":
        ids = np.array([1, -2])
    elif case == "ids_2d":
        ids = np.array([[1, 2]])
    elif case == "float_ids":
        ids = np.array([1.0, 2.0])
    elif case == "count_mismatch":
        ids = np.array([1, 2, 3])
    with pytest.raises(InvalidArgument):
        index.add(ids, vecs)
    assert len(index) == 0


def test_bad_queries_are_refused(filled: VectorIndex, corpus: Corpus) -> None:
    q = corpus.real_vectors[:2].copy()
    with pytest.raises(InvalidArgument):
        filled.search(q, 0)
    with pytest.raises(InvalidArgument):
        filled.search(q[0], K)  # 1-D: a single query must still be (1, d)
    q[0, 0] = np.nan
    with pytest.raises(InvalidArgument):
        filled.search(q, K)


# -- removal --------------------------------------------------------------------------------
def test_remove_hides_ids_and_matches_oracle(filled: VectorIndex, corpus: Corpus) -> None:
    gone = corpus.real_ids[::3]
    unknown = np.array([1, 2, 3], dtype=np.int64)
    assert filled.remove(np.concatenate([gone, unknown])) == gone.size
    assert filled.remove(gone[:5]) == 0
    assert len(filled) == corpus.ids.size - gone.size
    assert not filled.contains(gone).any()
    keep = ~np.isin(corpus.ids, gone)
    hits = filled.search(corpus.real_vectors, K)
    assert not np.isin(hits.ids, gone).any()
    assert_same_hits(filled, oracle(corpus.ids[keep], corpus.vectors[keep]), corpus.real_vectors)


def test_removed_id_can_be_added_again(filled: VectorIndex, corpus: Corpus) -> None:
    tid, other = corpus.real_ids[0], corpus.real_vectors[1]
    assert filled.remove(np.array([tid])) == 1
    filled.add(np.array([tid]), other[None, :])
    hits = filled.search(other[None, :], 2)
    assert sorted(hits.ids[0].tolist()) == sorted([int(tid), int(corpus.real_ids[1])])
    assert len(filled) == corpus.ids.size


# -- persistence -----------------------------------------------------------------------------
def _reload(index: VectorIndex, path: Path, milvus_client: Any) -> VectorIndex:
    index.save(path)
    if isinstance(index, MilvusIndex):
        if index.uri is not None:  # a server: reconnect to the URI the manifest records
            return MilvusIndex.load(path)
        return MilvusIndex.load(path, client=milvus_client)
    return type(index).load(path)


def test_save_and_load_round_trip(
    filled: VectorIndex, corpus: Corpus, tmp_path: Path, milvus_client: Any
) -> None:
    gone = corpus.real_ids[1::4]
    filled.remove(gone)
    before = filled.search(corpus.real_vectors, K)
    loaded = _reload(filled, tmp_path / "gallery.index", milvus_client)
    assert loaded.describe() == filled.describe()
    np.testing.assert_array_equal(loaded.ids(), filled.ids())
    after = loaded.search(corpus.real_vectors, K)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    # the reloaded index keeps working
    loaded.add(np.array([5]), corpus.real_vectors[1][None, :])
    assert 5 in loaded
    assert list(tmp_path.iterdir()) == [tmp_path / "gallery.index"]  # no temp file left


def test_save_replaces_atomically_and_damage_is_detected(
    make: Factory, corpus: Corpus, tmp_path: Path, milvus_client: Any
) -> None:
    index = make()
    index.add(corpus.real_ids[:50], corpus.real_vectors[:50])
    path = tmp_path / "g.index"
    index.save(path)
    index.add(corpus.real_ids[50:60], corpus.real_vectors[50:60])
    index.save(path)
    assert len(_reload(index, path, milvus_client)) == 60
    assert [p.name for p in tmp_path.iterdir()] == ["g.index"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError):
        type(index).load(path, client=milvus_client)


def test_removed_templates_leave_no_bytes_in_saved_files(
    make: Factory, corpus: Corpus, tmp_path: Path
) -> None:
    index = make()
    if isinstance(index, MilvusIndex):
        pytest.skip("Milvus holds the data itself: its erasure is compaction, tested on a server")
    index.add(corpus.real_ids[:60], corpus.real_vectors[:60])
    index.remove(corpus.real_ids[:30])
    index.save(tmp_path / "g.index")
    raw = (tmp_path / "g.index").read_bytes()
    for v in corpus.real_vectors[:30]:
        assert v.tobytes() not in raw
    assert corpus.real_vectors[45].tobytes() in raw  # kept ones are there: the check can fail
    again = type(index).load(tmp_path / "g.index")
    assert not again.contains(corpus.real_ids[:30]).any()
    assert_same_hits(
        again, oracle(corpus.real_ids[30:60], corpus.real_vectors[30:60]), corpus.real_vectors
    )


def test_describe_is_json_and_recreates_the_kind(filled: VectorIndex, milvus_client: Any) -> None:
    desc = filled.describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["dimension"] == D and desc["model_id"] == MODEL
    lite = desc["kind"] == "milvus" and desc["params"]["uri"] is None
    twin = from_description(desc, **({"client": milvus_client} if lite else {}))
    assert twin.kind == filled.kind and twin.describe()["params"] == desc["params"]
    if isinstance(twin, MilvusIndex):
        twin.close()


# -- Milvus specifics: galleries are partitions of one model's collection ---------------------
@pytest.fixture(params=["milvus-lite", "milvus-server"])
def any_milvus_client(request: pytest.FixtureRequest, milvus_client: Any) -> Iterator[Any]:
    """A client of milvus-lite, or of the session's Milvus server."""
    if request.param == "milvus-lite":
        yield milvus_client
        return
    from pymilvus import MilvusClient

    server: MilvusServer = request.getfixturevalue("milvus_server")
    client = MilvusClient(uri=server.uri)
    yield client
    client.close()


def test_milvus_galleries_are_isolated(corpus: Corpus, any_milvus_client: Any) -> None:
    milvus_client = any_milvus_client
    run = uuid.uuid4().hex[:8]  # the server is shared by the whole run
    a = MilvusIndex(milvus_client, model_id=MODEL, dimension=D, gallery=f"watch list A {run}")
    b = MilvusIndex(
        milvus_client,
        model_id=MODEL,
        dimension=D,
        gallery=f"watch list B {run}",
        flush_on_add=True,
    )
    assert a.collection == b.collection and a.partition != b.partition
    a.add(corpus.real_ids[:20], corpus.real_vectors[:20])
    b.add(corpus.real_ids[:5], corpus.real_vectors[20:25])  # same ids, other gallery: fine
    assert len(a) == 20 and len(b) == 5
    hits_b = b.search(corpus.real_vectors[:1], 10)
    assert set(hits_b.ids[0, :5].tolist()) == set(corpus.real_ids[:5].tolist())
    assert (hits_b.ids[0, 5:] == -1).all()
    a.drop()
    assert len(b) == 5
    reopened = MilvusIndex(
        milvus_client, model_id=MODEL, dimension=D, gallery=f"watch list A {run}"
    )
    assert len(reopened) == 0
    b.drop()
