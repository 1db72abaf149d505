"""Faces → identities: seeds clustered, the rest joining, ambiguous faces flagged.

1. Only *seedable* faces (those passing the quality gates) are clustered; a seedable face
   alone is a cluster of one.
2. Every other face joins the cluster with the highest mean similarity to its members if that
   reaches the threshold and the cluster holds no face of the same source; otherwise it stays
   unassigned (label -1). Faces join strongest first; they never start a cluster.
3. A clustered face is *ambiguous* when another cluster comes within ``margin`` of its own
   (mean similarity to the members, itself left out) and reaches ``threshold - margin``: a
   human should look at it before the clusters are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from faceledger.cluster.algorithms import average_link, components, whispers
from faceledger.cluster.graph import (
    Labels,
    Source,
    Vectors,
    check_faces,
    groups,
    relabel,
    source_codes,
)
from faceledger.errors import InvalidArgument

Method = Literal["average", "components", "whispers"]
METHODS: tuple[str, ...] = get_args(Method)
DEFAULT_METHOD: Method = "whispers"
"""Chosen by measurement: benchmarks/README.md, "Clustering unknown faces"."""

_ALGORITHMS = {"average": average_link, "components": components, "whispers": whispers}


@dataclass(frozen=True)
class Clustering:
    """Cluster label per face (-1: unassigned), and the faces a human should review."""

    labels: Labels
    ambiguous: tuple[int, ...]
    """Faces whose own cluster does not beat the runner-up by ``margin``."""
    runner_up: Labels
    """Per face, the most similar other cluster (-1: none)."""
    own_score: npt.NDArray[np.float32]
    """Mean similarity to the other members of its cluster (NaN: alone or unassigned)."""
    runner_up_score: npt.NDArray[np.float32]
    """Mean similarity to the runner-up cluster's members (NaN: none)."""
    threshold: float
    margin: float
    method: str

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max(initial=-1)) + 1

    @property
    def unassigned(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.flatnonzero(self.labels < 0))

    def clusters(self) -> list[list[int]]:
        """Face indices of each cluster, largest first (ties: lowest first face)."""
        found = [g.tolist() for g in groups(self.labels)]
        return sorted(found, key=lambda g: (-len(g), g[0]))


def cluster_faces(
    vectors: Vectors,
    sources: Sequence[Source],
    *,
    threshold: float,
    margin: float = 0.0,
    seedable: Sequence[bool] | None = None,
    method: str = DEFAULT_METHOD,
) -> Clustering:
    """Cluster ``vectors`` at the cosine ``threshold`` (from a target FMR: graph.threshold_at_fmr).

    ``sources``: the image of each face, or for a video track the frames it spans; two faces
    sharing a source never share a cluster. ``seedable``: which faces may start a cluster
    (default: all).
    """
    x = check_faces(vectors, sources, seedable)
    if method not in _ALGORITHMS:
        raise InvalidArgument(f"clustering method must be one of {', '.join(METHODS)}")
    if margin < 0:
        raise InvalidArgument("the ambiguity margin must not be negative")
    n = x.shape[0]
    seeds = np.ones(n, dtype=bool) if seedable is None else np.asarray(seedable, dtype=bool)
    labels = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(seeds)
    labels[idx] = _ALGORITHMS[method](x[idx], threshold, [sources[i] for i in idx.tolist()])
    labels = _join(x, labels, np.flatnonzero(~seeds), sources, threshold)
    own, alt, alt_score = _scores(x, labels)
    near = ~np.isnan(alt_score) & (alt_score >= threshold - margin)
    close = np.isnan(own) | (own - np.nan_to_num(alt_score, nan=-np.inf) < margin)
    flagged = np.flatnonzero((labels >= 0) & near & close)
    return Clustering(
        labels=labels,
        ambiguous=tuple(int(i) for i in flagged),
        runner_up=alt,
        own_score=own,
        runner_up_score=alt_score,
        threshold=float(threshold),
        margin=float(margin),
        method=method,
    )


BLOCK_ELEMENTS = 1 << 20
"""Faces × clusters similarities are computed this many at a time (4 MB of float32), so
joining and ambiguity stay linear in memory however many faces and clusters there are."""


def _cluster_sums(x: Vectors, labels: Labels) -> tuple[Vectors, npt.NDArray[np.float32]]:
    """(k, d) sum of each cluster's templates and (k,) member counts."""
    k = int(labels.max(initial=-1)) + 1
    sums = np.zeros((k, x.shape[1]), dtype=np.float32)
    members = np.flatnonzero(labels >= 0)
    np.add.at(sums, labels[members], x[members])
    counts = np.bincount(labels[members], minlength=k).astype(np.float32)
    return sums, counts


def _block_rows(k: int) -> int:
    """Rows per block of a (rows, k) similarity matrix within :data:`BLOCK_ELEMENTS`."""
    return max(1, BLOCK_ELEMENTS // max(k, 1))


def _join(
    x: Vectors,
    labels: Labels,
    joiners: npt.NDArray[np.intp],
    sources: Sequence[Source],
    threshold: float,
) -> Labels:
    """Non-seed faces join the existing clusters (seeds' means), strongest first."""
    k = int(labels.max(initial=-1)) + 1
    if k == 0 or joiners.size == 0:
        return labels
    sums, counts = _cluster_sums(x, labels)
    rows: list[npt.NDArray[np.intp]] = []
    cols: list[npt.NDArray[np.intp]] = []
    vals: list[npt.NDArray[np.float32]] = []
    step = _block_rows(k)
    for start in range(0, joiners.size, step):
        mean = (x[joiners[start : start + step]] @ sums.T) / counts
        r, col = np.nonzero(mean >= threshold)  # only these can join: row-major order
        rows.append(r + start)
        cols.append(col)
        vals.append(mean[r, col])
    src = source_codes(sources).per_face
    held: list[set[int]] = [set() for _ in range(k)]
    for i in np.flatnonzero(labels >= 0).tolist():
        held[labels[i]] |= src[i]
    out = labels.copy()
    rr, cc, ss = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    for e in np.argsort(-ss, kind="stable").tolist():
        face, c = int(joiners[rr[e]]), int(cc[e])
        if out[face] >= 0 or held[c] & src[face]:
            continue
        out[face] = c
        held[c] |= src[face]
    return relabel(out)


def _scores(
    x: Vectors, labels: Labels
) -> tuple[npt.NDArray[np.float32], Labels, npt.NDArray[np.float32]]:
    """Per face: mean similarity to its own cluster's other members, the best other cluster
    and the mean similarity to that cluster's members (block by block: no faces × clusters
    matrix is ever held whole)."""
    n, k = x.shape[0], int(labels.max(initial=-1)) + 1
    own = np.full(n, np.nan, dtype=np.float32)
    alt = np.full(n, -1, dtype=np.int64)
    alt_score = np.full(n, np.nan, dtype=np.float32)
    if k == 0:
        return own, alt, alt_score
    sums, counts = _cluster_sums(x, labels)
    other = k > 1 or not bool((labels >= 0).all())
    step = _block_rows(k)
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n))
        total = x[rows] @ sums.T  # sum of similarities to each cluster's members
        lab = labels[rows]
        mine = np.flatnonzero(lab >= 0)
        r, c = rows[mine], lab[mine]
        own_n = counts[c] - 1
        own_sum = total[mine, c] - np.einsum("ij,ij->i", x[r], x[r])
        with np.errstate(invalid="ignore", divide="ignore"):
            own[r] = np.where(own_n > 0, own_sum / np.maximum(own_n, 1), np.nan)
        if not other:
            continue
        mean = total / counts
        mean[mine, c] = -np.inf
        best = np.argmax(mean, axis=1)
        score = mean[np.arange(rows.size), best]
        ok = np.isfinite(score)
        alt[rows[ok]] = best[ok]
        alt_score[rows[ok]] = score[ok]
    return own, alt, alt_score
