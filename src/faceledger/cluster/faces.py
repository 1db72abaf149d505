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
from faceledger.cluster.graph import Labels, Vectors, check_faces, relabel
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
        groups = [np.flatnonzero(self.labels == c).tolist() for c in range(self.n_clusters)]
        return sorted(groups, key=lambda g: (-len(g), g[0]))


def cluster_faces(
    vectors: Vectors,
    sources: Sequence[str],
    *,
    threshold: float,
    margin: float = 0.0,
    seedable: Sequence[bool] | None = None,
    method: str = DEFAULT_METHOD,
) -> Clustering:
    """Cluster ``vectors`` at the cosine ``threshold`` (from a target FMR: graph.threshold_at_fmr).

    ``sources``: the image (or video frame) of each face; two faces of one source never share
    a cluster. ``seedable``: which faces may start a cluster (default: all).
    """
    x = check_faces(vectors, sources, seedable)
    if method not in _ALGORITHMS:
        raise InvalidArgument(f"clustering method must be one of {', '.join(METHODS)}")
    if margin < 0:
        raise InvalidArgument("the ambiguity margin must not be negative")
    n = x.shape[0]
    seeds = np.ones(n, dtype=bool) if seedable is None else np.asarray(seedable, dtype=bool)
    src = [str(s) for s in sources]
    labels = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(seeds)
    labels[idx] = _ALGORITHMS[method](x[idx], threshold, [src[i] for i in idx])
    labels = _join(x, labels, np.flatnonzero(~seeds), src, threshold)
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


def _join(
    x: Vectors, labels: Labels, joiners: npt.NDArray[np.intp], src: list[str], threshold: float
) -> Labels:
    """Non-seed faces join the existing clusters (seeds' means), strongest first."""
    k = int(labels.max(initial=-1)) + 1
    if k == 0 or joiners.size == 0:
        return labels
    seeded = labels >= 0
    onehot = np.zeros((x.shape[0], k), dtype=np.float32)
    onehot[np.flatnonzero(seeded), labels[seeded]] = 1.0
    mean = (x[joiners] @ (x.T @ onehot)) / onehot.sum(axis=0)
    held = [{src[i] for i in np.flatnonzero(labels == c)} for c in range(k)]
    out = labels.copy()
    order = np.dstack(np.unravel_index(np.argsort(-mean, axis=None), mean.shape))[0]
    for r, c in order:
        score = mean[r, c]
        if score < threshold:
            break
        face = int(joiners[r])
        if out[face] >= 0 or src[face] in held[c]:
            continue
        out[face] = c
        held[c].add(src[face])
    return relabel(out)


def _scores(
    x: Vectors, labels: Labels
) -> tuple[npt.NDArray[np.float32], Labels, npt.NDArray[np.float32]]:
    """Per face: mean similarity to its own cluster's other members, the best other cluster
    and the mean similarity to that cluster's members."""
    n, k = x.shape[0], int(labels.max(initial=-1)) + 1
    own = np.full(n, np.nan, dtype=np.float32)
    alt = np.full(n, -1, dtype=np.int64)
    alt_score = np.full(n, np.nan, dtype=np.float32)
    if k == 0:
        return own, alt, alt_score
    members = np.flatnonzero(labels >= 0)
    onehot = np.zeros((n, k), dtype=np.float32)
    onehot[members, labels[members]] = 1.0
    counts = onehot.sum(axis=0)
    total = x @ (x.T @ onehot)  # (n, k): sum of similarities to each cluster's members
    mine = labels >= 0
    rows = np.flatnonzero(mine)
    own_n = counts[labels[rows]] - 1
    own_sum = total[rows, labels[rows]] - np.einsum("ij,ij->i", x[rows], x[rows])
    with np.errstate(invalid="ignore", divide="ignore"):
        own[rows] = np.where(own_n > 0, own_sum / np.maximum(own_n, 1), np.nan)
    mean = total / counts
    mean[rows, labels[rows]] = -np.inf
    if k > 1 or not mine.all():
        best = np.argmax(mean, axis=1)
        score = mean[np.arange(n), best]
        ok = np.isfinite(score)
        alt[ok] = best[ok]
        alt_score[ok] = score[ok]
    return own, alt, alt_score
