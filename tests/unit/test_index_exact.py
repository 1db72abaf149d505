"""ExactIndex against a plain dict model under random add/remove/search sequences (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceledger.errors import Conflict
from faceledger.index import ExactIndex, SearchHits
from faceledger.index.base import rerank

D = 4
# A small pool of unit vectors with exact duplicates, so ties are frequent.
_POOL = np.random.default_rng(3).standard_normal((6, D))
POOL = (_POOL / np.linalg.norm(_POOL, axis=1, keepdims=True)).astype(np.float32)


def model_search(model: dict[int, int], query: np.ndarray, k: int) -> list[int]:
    """Reference: float64 scores, descending, ties by ascending id."""
    q = query.astype(np.float64)
    scored = [(-float(q @ POOL[v].astype(np.float64)), i) for i, v in model.items()]
    return [i for _, i in sorted(scored)[:k]]


op = st.one_of(
    st.tuples(
        st.just("add"),
        st.lists(st.tuples(st.integers(0, 40), st.integers(0, 5)), min_size=1, max_size=6),
    ),
    st.tuples(st.just("remove"), st.lists(st.integers(0, 40), max_size=8)),
    st.tuples(st.just("search"), st.tuples(st.integers(0, 5), st.integers(1, 8))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=30))
def test_exact_index_behaves_like_a_dict(ops: list[tuple[str, object]]) -> None:
    index = ExactIndex(D, "m")
    model: dict[int, int] = {}
    for name, arg in ops:
        if name == "add":
            pairs = arg  # type: ignore[assignment]
            ids = np.array([p[0] for p in pairs], dtype=np.int64)  # type: ignore[index]
            vecs = POOL[[p[1] for p in pairs]]  # type: ignore[index]
            clash = len(set(ids.tolist())) < ids.size or any(int(i) in model for i in ids)
            if clash:
                with pytest.raises(Conflict):
                    index.add(ids, vecs)
            else:
                index.add(ids, vecs)
                model.update({int(i): int(p[1]) for i, p in zip(ids, pairs, strict=True)})  # type: ignore[index]
        elif name == "remove":
            gone = np.array(arg, dtype=np.int64)
            expected = len({int(i) for i in gone} & model.keys())
            assert index.remove(gone) == expected
            for i in gone:
                model.pop(int(i), None)
        else:
            v, k = arg  # type: ignore[misc]
            hits = index.search(POOL[v][None, :], k)
            want = model_search(model, POOL[v], k)
            assert hits.ids[0, : len(want)].tolist() == want
            assert (hits.ids[0, len(want) :] == -1).all()
        assert len(index) == len(model)
        assert index.ids().tolist() == sorted(model)


def test_exact_index_survives_heavy_removal_and_reload(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((500, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(500, dtype=np.int64) * 2
    index = ExactIndex(16, "m")
    index.add(ids, v)
    index.remove(ids[:400])  # triggers compaction
    assert len(index) == 100
    np.testing.assert_array_equal(index.vectors(ids[400:]), v[400:])
    index.save(tmp_path / "x.idx")
    again = ExactIndex.load(tmp_path / "x.idx")
    hits = again.search(v[450:460], 1)
    np.testing.assert_array_equal(hits.ids[:, 0], ids[450:460])
    # removed template bytes are not in the saved file
    raw = (tmp_path / "x.idx").read_bytes()
    assert v[0].tobytes() not in raw and v[450].tobytes() in raw


def test_rerank_orders_by_score_then_id_and_pads() -> None:
    q = POOL[:1]
    cand = np.array([[9, 3, -1, 4]], dtype=np.int64)
    table = {9: POOL[0], 3: POOL[0], 4: POOL[1]}
    hits = rerank(q, cand, lambda ids: np.stack([table[int(i)] for i in ids]), 6)
    assert isinstance(hits, SearchHits)
    assert hits.ids[0].tolist()[:3] == [3, 9, 4]
    assert hits.ids[0].tolist()[3:] == [-1, -1, -1]
    assert np.isneginf(hits.scores[0, 3:]).all()
    assert hits.row(0)[0] == (3, pytest.approx(1.0, abs=1e-6))
