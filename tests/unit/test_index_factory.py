"""Choosing, building, loading and rebuilding indexes (synthetic vectors, small dimensions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from faceledger.errors import IntegrityError, InvalidArgument, NotFound
from faceledger.index import (
    ExactIndex,
    FaissHNSWIndex,
    FaissIVFIndex,
    IndexChoice,
    choose_index,
    factory,
    load_index,
    make_index,
    needs_rebuild,
    rebuild,
    retune,
)
from faceledger.index.factory import FLAT_MAX


def unit(n: int, d: int, seed: int = 0) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def clustered(n: int, d: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Unit vectors around 300 shared centres: uniform vectors have no neighbours worth finding."""
    centres = unit(300, d, seed=99)
    rng = np.random.default_rng(seed)
    v = centres[rng.integers(0, 300, n)] + 0.25 * unit(n, d, seed=seed + 1)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


needs_scann = pytest.mark.skipif(
    not factory.scann_available(), reason="ScaNN wheels exist for Linux x86-64 only"
)


def test_choice_follows_size_recall_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "scann_available", lambda: False)  # faiss only
    assert choose_index(1_000).kind == "faiss-flat"
    assert choose_index(FLAT_MAX).kind == "faiss-flat"
    mid = choose_index(200_000, 0.99)
    assert mid.kind == "faiss-hnsw" and mid.params["ef_search"] >= 64
    big = choose_index(1_000_000, 0.99)
    assert big.kind == "faiss-ivf" and big.params["encoding"] == "pq4fs"
    assert big.params["nprobe"] <= big.params["nlist"] and big.params["shortlist"] >= 100
    assert choose_index(1_000_000, 1.0).kind == "faiss-flat"
    small = choose_index(1_000_000, 0.95, max_bytes_per_template=128)
    assert small.kind == "faiss-ivf" and small.params["encoding"] == "pq4fs"
    assert small.params["pq_m"] // 2 + 8 <= 128  # 4-bit codes
    assert 512 <= small.params["nlist"] <= 4096
    assert small.params["nprobe"] < big.params["nprobe"]  # a lower recall target probes less
    tiny = choose_index(1_000_000, 0.95, max_bytes_per_template=48)
    assert tiny.kind == "faiss-ivf" and tiny.params["encoding"] == "pq"
    assert tiny.params["pq_m"] + 8 <= 48
    for bad in ((-1, 0.9, None), (10, 0.0, None), (10, 1.5, None), (10, 0.9, 8)):
        with pytest.raises(InvalidArgument):
            choose_index(bad[0], bad[1], max_bytes_per_template=bad[2])


def test_scann_is_chosen_at_scale_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "scann_available", lambda: True)
    big = choose_index(1_000_000, 0.99)
    assert big.kind == "scann"
    assert big.params["leaves"] == 2000 and big.params["leaves_to_search"] == 150
    assert choose_index(1_000_000, 0.95).params["leaves_to_search"] == 100
    assert choose_index(4_000_000, 0.99).params["leaves"] == 4000
    assert choose_index(200_000, 0.99).kind == "faiss-hnsw"
    lean = choose_index(1_000_000, 0.99, max_bytes_per_template=128)
    assert lean.kind == "faiss-ivf"  # ScaNN keeps two float copies: over this budget
    assert choose_index(1_000_000, 1.0).kind == "faiss-flat"


def test_make_index_refuses_unknown_kinds_and_parameters() -> None:
    with pytest.raises(InvalidArgument):
        make_index("annoy", 8, "m")
    with pytest.raises(InvalidArgument):
        make_index("faiss-hnsw", 8, "m", efsearch=10)
    with pytest.raises(InvalidArgument):
        make_index("faiss-ivf", 8, "m", encoding="pq", pq_m=3)
    with pytest.raises(InvalidArgument):
        make_index("exact", 0, "m")


@pytest.mark.parametrize(
    "choice",
    [
        IndexChoice("faiss-hnsw", {"m": 16, "ef_search": 64}),
        IndexChoice("faiss-ivf", {"nlist": 32, "nprobe": 8, "encoding": "sq8"}),
        IndexChoice("faiss-ivf", {"nlist": 32, "nprobe": 8, "encoding": "pq", "pq_m": 8}),
        IndexChoice("faiss-ivf", {"nlist": 32, "nprobe": 8, "encoding": "pq4fs", "pq_m": 16}),
        pytest.param(
            IndexChoice("scann", {"leaves": 32, "leaves_to_search": 8, "reorder": 100}),
            marks=needs_scann,
        ),
    ],
    ids=["hnsw", "ivf-sq8", "ivf-pq", "ivf-pq4fs", "scann"],
)
def test_rebuild_holds_exactly_the_given_templates_with_high_recall(choice: IndexChoice) -> None:
    v = clustered(6000, 32)
    ids = np.arange(6000, dtype=np.int64) * 5 + 3
    seen: list[int] = []
    index = rebuild(
        ids,
        v,
        choice,
        dimension=32,
        model_id="m",
        chunk=2500,
        progress=lambda done, total: seen.append(done),
    )
    # ScaNN encodes everything in one native pass (its inserts would hold the GIL)
    assert seen == ([6000] if choice.kind == "scann" else [2500, 5000, 6000])
    assert index.kind == choice.kind
    np.testing.assert_array_equal(index.ids(), ids)
    exact = ExactIndex(32, "m")
    exact.add(ids, v)
    q = clustered(200, 32, seed=1)
    got, want = index.search(q, 10).ids, exact.search(q, 10).ids
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.9, recall


def test_ivf_with_external_rerank_source_needs_it_again_on_load(tmp_path: Path) -> None:
    v = unit(3000, 16)
    ids = np.arange(3000, dtype=np.int64)
    store = dict(zip(ids.tolist(), v, strict=True))
    calls: list[int] = []

    def source(wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        calls.append(wanted.size)
        return np.stack([store[int(i)] for i in wanted])

    index = rebuild(
        ids,
        v,
        IndexChoice("faiss-ivf", {"nlist": 16, "nprobe": 16, "encoding": "pq", "pq_m": 4}),
        dimension=16,
        model_id="m",
        rerank_source=source,
    )
    assert index.memory_bytes() < 3000 * (4 + 8) + 200_000  # codes + ids, no full vectors
    hits = index.search(v[:5], 1)
    assert calls and hits.ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    index.save(tmp_path / "ivf.idx")
    with pytest.raises(InvalidArgument):
        load_index(tmp_path / "ivf.idx")
    again = load_index(tmp_path / "ivf.idx", rerank_source=source)
    assert again.search(v[:5], 1).ids[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_sq8_hnsw_learns_from_a_big_first_add_and_can_rerank_from_the_store(
    tmp_path: Path,
) -> None:
    v = clustered(3000, 16)
    ids = np.arange(3000, dtype=np.int64) + 100
    small = FaissHNSWIndex(16, "m", m=8)
    with pytest.raises(InvalidArgument):
        small.add(ids[:10], v[:10])  # too few to learn SQ8 ranges from
    assert len(small) == 0
    small.add(ids, v)  # a first batch of 3000 is enough
    store = dict(zip(ids.tolist(), v, strict=True))

    def source(want: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        return np.stack([store[int(i)] for i in want])

    index = FaissHNSWIndex(16, "m", m=8, rerank_source=source)
    index.add(ids, v)
    assert index.memory_bytes() < small.memory_bytes() - 3000 * 16 * 4 + 1
    for idx in (small, index):
        hits = idx.search(v[:20], 1)
        np.testing.assert_array_equal(hits.ids[:, 0], ids[:20])
    index.remove(ids[:10])
    assert not np.isin(index.search(v[:10], 5).ids, ids[:10]).any()
    index.save(tmp_path / "h.idx")
    with pytest.raises(InvalidArgument):
        load_index(tmp_path / "h.idx")
    again = load_index(tmp_path / "h.idx", rerank_source=source)
    np.testing.assert_array_equal(again.search(v[10:30], 1).ids[:, 0], ids[10:30])


def test_source_that_disagrees_with_the_index_is_an_integrity_error() -> None:
    v = unit(500, 8)
    index = FaissIVFIndex(
        8, "m", nlist=4, nprobe=4, encoding="flat", rerank_source=lambda ids: v[: ids.size - 1]
    )
    index.train(v)
    index.add(np.arange(500), v)
    with pytest.raises(IntegrityError):
        index.search(v[:2], 3)


def test_untrained_ivf_refuses_adds_and_small_training_sets() -> None:
    index = FaissIVFIndex(8, "m", nlist=64)
    with pytest.raises(InvalidArgument):
        index.add(np.arange(3), unit(3, 8))
    with pytest.raises(InvalidArgument):
        index.train(unit(10, 8))


def test_load_index_dispatches_on_the_recorded_kind(tmp_path: Path) -> None:
    v = unit(100, 8)
    hnsw = FaissHNSWIndex(8, "m", m=8, storage="flat")
    hnsw.add(np.arange(100), v)
    hnsw.save(tmp_path / "a.idx")
    loaded = load_index(tmp_path / "a.idx")
    assert isinstance(loaded, FaissHNSWIndex) and loaded.describe() == hnsw.describe()
    with pytest.raises(NotFound):
        load_index(tmp_path / "missing.idx")
    (tmp_path / "junk.idx").write_bytes(b"not an index")
    with pytest.raises(IntegrityError):
        load_index(tmp_path / "junk.idx")
    with pytest.raises(IntegrityError):
        ExactIndex.load(tmp_path / "a.idx")  # a file of another kind


def test_needs_rebuild_reacts_to_growth_and_tombstones() -> None:
    flat = make_index("faiss-flat", 4, "m")
    flat.add(np.arange(1000), unit(1000, 4))
    assert needs_rebuild(flat) is None
    big = make_index("faiss-flat", 4, "m")
    big.add(np.arange(2 * FLAT_MAX + 1), unit(2 * FLAT_MAX + 1, 4))
    choice = needs_rebuild(big)
    assert choice is not None and choice.kind == "faiss-hnsw"

    n = FLAT_MAX // 4 + 1000
    hnsw = FaissHNSWIndex(4, "m", m=8)
    hnsw.add(np.arange(n), unit(n, 4))
    assert needs_rebuild(hnsw) is None
    hnsw.remove(np.arange(0, n, 4))
    assert hnsw.dead_fraction > 0.2
    assert needs_rebuild(hnsw) is not None


def test_a_growing_hnsw_graph_widens_its_search_and_hands_over_to_ivf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hnsw = FaissHNSWIndex(4, "m", m=8, ef_search=64)
    hnsw.add(np.arange(3000), unit(3000, 4))
    monkeypatch.setattr(factory, "FLAT_MAX", 100)
    monkeypatch.setattr(factory, "FAST_SCAN_MIN", 2000)
    # hnsw_ef is 128 below 100k templates: a graph made with 64 is widened, not rebuilt
    assert retune(hnsw) and hnsw.ef_search == 128
    assert not retune(hnsw)
    choice = needs_rebuild(hnsw)  # grown past FAST_SCAN_MIN: IVF fast-scan from here
    assert choice is not None and choice.kind == "faiss-ivf"
    assert choice.params["encoding"] == "pq4fs"


@needs_scann
def test_a_scann_tree_is_rebuilt_once_the_gallery_outgrows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(factory, "FLAT_MAX", 100)
    v = clustered(10_001, 32)
    choice = IndexChoice("scann", {"leaves": 100, "leaves_to_search": 20})
    index = rebuild(np.arange(6000), v[:6000], choice, dimension=32, model_id="m")
    assert needs_rebuild(index) is None  # 100 leaves suit up to 4x the 2500 they are sized for
    index.add(np.arange(6000, 10_001), v[6000:])
    assert needs_rebuild(index) is not None
