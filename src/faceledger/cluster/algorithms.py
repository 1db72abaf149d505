"""Clustering algorithms over templates, each honouring cannot-link where it links faces.

- :func:`average_link`: agglomerative, average linkage (the mean similarity of every cross
  pair of two clusters must reach the threshold), cannot-link blocks a merge. Dense: at most
  :data:`MAX_DENSE_FACES` faces.
- :func:`components`: single linkage — the connected components of the k-NN graph's edges
  at the threshold, joined strongest edge first, skipping an edge that would join two faces
  of one source (Kruskal with cannot-link).
- :func:`whispers`: dlib's Chinese whispers on the same edges, then every cluster holding two
  faces of one source keeps the better-fitting one and the other leaves as a singleton.
- References, no cannot-link: :func:`dlib_whispers_euclidean` (dlib's face_clustering example,
  Euclidean distance below 0.5) and :func:`dbscan` (Euclidean eps on unit vectors).
"""

from __future__ import annotations

from collections.abc import Sequence

import dlib
import numpy as np
import numpy.typing as npt

from faceledger.cluster.graph import (
    Labels,
    Source,
    UnionFind,
    Vectors,
    cannot_link,
    edges_above,
    groups,
    relabel,
    source_codes,
)
from faceledger.errors import InvalidArgument

MAX_DENSE_FACES = 8000
"""Average linkage keeps an (n, n) similarity matrix: 256 MB of float32 at this size."""


def average_link(vectors: Vectors, threshold: float, sources: Sequence[Source]) -> Labels:
    """Average-linkage agglomerative clustering stopped at ``threshold``, with cannot-link."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n > MAX_DENSE_FACES:
        raise InvalidArgument(
            f"average linkage clusters at most {MAX_DENSE_FACES} faces at once, not {n}"
        )
    sums = (vectors @ vectors.T).astype(np.float32)
    blocked = cannot_link(sources)
    np.fill_diagonal(blocked, True)
    size = np.ones(n, dtype=np.float32)
    alive = np.ones(n, dtype=bool)
    members = np.arange(n)

    def row(i: int) -> npt.NDArray[np.float32]:
        r = np.asarray(sums[i] / (size[i] * size), dtype=np.float32)
        r[blocked[i] | ~alive] = -np.inf
        return r

    best = np.zeros(n, dtype=np.int64)
    best_val = np.full(n, -np.inf, dtype=np.float32)
    for i in range(n):
        r = row(i)
        best[i] = int(np.argmax(r))
        best_val[i] = r[best[i]]
    while True:
        i = int(np.argmax(best_val))
        if not best_val[i] >= threshold:
            break
        j = int(best[i])
        sums[i] += sums[j]
        sums[:, i] = sums[i]
        size[i] += size[j]
        blocked[i] |= blocked[j]
        blocked[:, i] = blocked[i]
        alive[j] = False
        best_val[j] = -np.inf
        members[members == j] = i
        col = sums[:, i] / (size[i] * size)
        col[blocked[:, i] | ~alive] = -np.inf
        stale = alive & ((best == i) | (best == j))
        stale[i] = True
        for k in np.flatnonzero(stale):
            r = row(int(k))
            best[k] = int(np.argmax(r))
            best_val[k] = r[best[k]]
        better = alive & ~stale & (col > best_val)
        best[better] = i
        best_val[better] = col[better]
    return relabel(members)


def components(vectors: Vectors, threshold: float, sources: Sequence[Source]) -> Labels:
    """Single linkage at ``threshold`` on the k-NN graph, strongest edge first, cannot-link."""
    n = vectors.shape[0]
    lo, hi, sims = edges_above(vectors, threshold)
    codes = source_codes(sources).per_face
    uf = UnionFind(n)
    held: dict[int, frozenset[int]] = dict(enumerate(codes))
    for e in np.argsort(-sims, kind="stable"):
        ra, rb = uf.find(int(lo[e])), uf.find(int(hi[e]))
        if ra == rb or held[ra] & held[rb]:
            continue
        root = uf.union(ra, rb)
        held[root] = held.pop(ra if root == rb else rb) | held[root]
    return uf.labels()


def whispers(vectors: Vectors, threshold: float, sources: Sequence[Source]) -> Labels:
    """dlib's Chinese whispers on the edges at ``threshold`` (weighted by similarity)."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi, sims = edges_above(vectors, threshold)
    if lo.size == 0:
        return np.arange(n, dtype=np.int64)
    # no self-loops: dlib counts them as votes, so a face would keep its own label
    found = dlib.chinese_whispers(
        [(int(a), int(b), float(s)) for a, b, s in zip(lo, hi, sims, strict=True)]
    )
    raw = np.arange(n, dtype=np.int64) + n  # faces beyond dlib's highest node: singletons
    raw[: len(found)] = found
    labels = relabel(raw)
    return split_cannot_link(vectors, labels, sources)


def split_cannot_link(vectors: Vectors, labels: Labels, sources: Sequence[Source]) -> Labels:
    """Each cluster keeps, of its faces sharing a source, the one with the highest mean
    similarity to the rest of the cluster; the others become singletons."""
    out = labels.copy()
    nxt = int(out.max(initial=-1)) + 1
    codes = source_codes(sources)
    dirty = _clusters_sharing_a_source(out, codes.owner, codes.code)
    members = groups(out) if dirty else []
    for c in dirty:
        idx = members[c]
        own = np.einsum("ij,ij->i", vectors[idx], vectors[idx])
        fit = (vectors[idx] @ vectors[idx].sum(axis=0) - own) / max(len(idx) - 1, 1)
        kept: set[int] = set()
        for k in idx[np.argsort(-fit, kind="stable")]:
            mine = codes.per_face[int(k)]
            if kept & mine:
                out[k] = nxt
                nxt += 1
            else:
                kept |= mine
    return relabel(out)


def _clusters_sharing_a_source(
    labels: Labels, owner: npt.NDArray[np.int64], code: npt.NDArray[np.int64]
) -> list[int]:
    """Clusters (ascending) holding two faces of one source: the only ones a split changes,
    found in one sort of the (face, source) pairs, so the split costs O(n log n) and not a
    scan per cluster."""
    clustered = labels[owner] >= 0
    if np.count_nonzero(clustered) < 2:
        return []
    pairs = np.stack([labels[owner[clustered]], code[clustered]], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    return sorted({int(c) for c in uniq[counts > 1, 0]})


def dlib_whispers_euclidean(vectors: Vectors, distance: float = 0.5) -> Labels:
    """dlib's face_clustering example: Chinese whispers linking Euclidean distance < 0.5."""
    if vectors.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    descriptors = [dlib.vector(v.astype(np.float64).tolist()) for v in vectors]
    return relabel(dlib.chinese_whispers_clustering(descriptors, distance))


def dbscan(vectors: Vectors, eps: float = 0.5, min_samples: int = 1) -> Labels:
    """DBSCAN with Euclidean ``eps`` on unit vectors (cosine >= 1 - eps²/2); noise is -1.

    A core face has at least ``min_samples`` faces (itself included) within ``eps``; cores
    within ``eps`` of each other share a cluster; a border face joins its most similar core.
    """
    n = vectors.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sims = vectors @ vectors.T
    near = sims >= 1.0 - eps * eps / 2.0
    np.fill_diagonal(near, True)
    core = near.sum(axis=1) >= min_samples
    uf = UnionFind(n)
    for i, j in zip(*np.nonzero(np.triu(near & core[:, None] & core[None, :], 1)), strict=True):
        uf.union(int(i), int(j))
    labels = np.full(n, -1, dtype=np.int64)
    labels[core] = [uf.find(int(i)) for i in np.flatnonzero(core)]
    for i in np.flatnonzero(~core):
        cand = np.flatnonzero(near[i] & core)
        if cand.size:
            labels[i] = labels[cand[np.argmax(sims[i, cand])]]
    return relabel(labels)
