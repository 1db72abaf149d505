"""Clustering stays linear in memory (issue #25) and the blocked path gives the dense one's
result: synthetic face-like templates of benchmarks/cluster_scale.py."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from benchmarks.cluster_scale import Case, dense_join, dense_scores, dense_split, make_case

from faceledger.cluster import cluster_faces, faces
from faceledger.cluster.algorithms import split_cannot_link, whispers
from faceledger.cluster.graph import groups, relabel

THRESHOLD = 0.9607  # the card's FMR 1e-5
MARGIN = 0.0108


def _ambiguous(case: Case, labels: np.ndarray, scores: tuple) -> np.ndarray:  # type: ignore[type-arg]
    own, _, alt = scores
    near = ~np.isnan(alt) & (alt >= THRESHOLD - MARGIN)
    close = np.isnan(own) | (own - np.nan_to_num(alt, nan=-np.inf) < MARGIN)
    return np.flatnonzero((labels >= 0) & near & close)


def _traced_peak(case: Case) -> tuple[int, int]:
    """Peak traced bytes of one clustering (numpy and Python; faiss's and dlib's C++ buffers
    are not traced) and its number of clusters."""
    tracemalloc.start()
    try:
        res = cluster_faces(
            case.vectors, case.sources, threshold=THRESHOLD, margin=MARGIN, seedable=case.seedable
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    for members in groups(res.labels):  # cannot-link held
        srcs = [case.sources[i] for i in members]
        assert len(srcs) == len(set(srcs))
    return peak, res.n_clusters


def test_5000_faces_never_hold_a_faces_by_faces_matrix() -> None:
    """5,000 faces, 1,000+ clusters: the dense path held three faces × clusters float32
    matrices (about 2.8 n² bytes here); now the peak is under 0.6 n² bytes, mostly the k-NN
    graph's edges and one 4 MB block, and doubling the faces far less than doubles it."""
    half, _ = _traced_peak(make_case(2500, seed=3))
    peak, clusters = _traced_peak(make_case(5000, seed=3))
    n = 5000
    assert clusters > 1000  # many people, most seen once
    assert peak < 0.6 * n * n, f"peak {peak / 1e6:.1f} MB for {n} faces"
    assert peak < 2.5 * half, f"{half / 1e6:.1f} MB → {peak / 1e6:.1f} MB for twice the faces"


@pytest.mark.parametrize("block", [64, 1 << 20])
def test_blocked_join_and_scores_equal_the_dense_path(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On 1,500 faces (joiners, group photos) the blocked join, split and scores give exactly
    the dense matrices' labels and ambiguous faces, with one row per block or many."""
    monkeypatch.setattr(faces, "BLOCK_ELEMENTS", block)
    case = make_case(1500, seed=5)
    x, src = case.vectors, case.sources
    idx = np.flatnonzero(case.seedable)
    seeded = whispers(x[idx], THRESHOLD, [src[i] for i in idx])
    labels = np.full(len(x), -1, dtype=np.int64)
    labels[idx] = seeded
    joiners = np.flatnonzero(~case.seedable)
    joined = faces._join(x, labels, joiners, src, THRESHOLD)
    assert np.array_equal(joined, dense_join(x, labels, joiners, src, THRESHOLD))
    assert (joined[joiners] >= 0).any() and (joined[joiners] < 0).any()
    blocked, dense = faces._scores(x, joined), dense_scores(x, joined)
    np.testing.assert_array_equal(blocked[1], dense[1])
    np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(blocked[2], dense[2], rtol=1e-6, atol=1e-6)
    assert np.array_equal(_ambiguous(case, joined, blocked), _ambiguous(case, joined, dense))
    res = cluster_faces(x, src, threshold=THRESHOLD, margin=MARGIN, seedable=case.seedable)
    assert np.array_equal(res.labels, joined)


def test_split_touches_only_clusters_sharing_a_source() -> None:
    """A coarse clustering (many faces of one photo together) splits as the dense scan did."""
    case = make_case(1500, seed=7)
    x, src = case.vectors, case.sources
    coarse = relabel(np.arange(len(x)) % 40)
    split = split_cannot_link(x, coarse, src)
    assert np.array_equal(split, dense_split(x, coarse, src))
    assert split.max() > coarse.max()
