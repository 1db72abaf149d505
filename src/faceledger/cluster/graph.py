"""The similarity graph of a set of faces: thresholds from a target FMR, cannot-link, edges.

A link between two faces means "the same person at this false-match rate": its threshold is
read from the model card's calibration (impostor scores measured on other data), never a
distance constant. Two faces of one image (or one video frame) share a ``source`` and can
never be the same person: they are *cannot-link*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from faceledger.errors import CalibrationError, InvalidArgument
from faceledger.models.card import ModelCard

Vectors = npt.NDArray[np.float32]
"""Row-stacked templates, shape (n, dimension): unit vectors, or a video track's mean of unit
templates (shorter: its dot products are mean similarities of the faces' pairs)."""
Labels = npt.NDArray[np.int64]
"""Cluster label per face; -1 for a face in no cluster."""
Source = str | frozenset[str]
"""Where a face was seen: its image, or for a video track the sampled frames it spans. Faces
sharing any source are different people (cannot-link)."""

FMR_DECADE = 10.0
"""The default ambiguity margin is the score span of one decade of FMR below the target."""


def threshold_at_fmr(card: ModelCard, target_fmr: float) -> float:
    """Cosine-similarity link threshold at ``target_fmr`` of ``card``'s calibration."""
    if not 0.0 < target_fmr < 1.0:
        raise InvalidArgument(f"target FMR must be in (0, 1), got {target_fmr:g}")
    if card.calibration is None:
        raise CalibrationError(
            f"model {card.id} has no calibration table; build one with `faceledger calibrate`"
        )
    return float(card.calibration.threshold_for(target_fmr))


def margin_at_fmr(card: ModelCard, target_fmr: float) -> float:
    """Score span between the thresholds at ``target_fmr`` and ten times that FMR: a face
    whose best cluster beats the runner-up by less is as close to both as one decade of FMR."""
    looser = min(target_fmr * FMR_DECADE, 0.5)
    return max(threshold_at_fmr(card, target_fmr) - threshold_at_fmr(card, looser), 0.0)


def check_faces(
    vectors: Vectors, sources: Sequence[Source], seedable: Sequence[bool] | None = None
) -> Vectors:
    """The vectors as float32 (n, d), after checking the per-face lists match them."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise InvalidArgument("templates must be a two-dimensional array (faces × dimension)")
    if len(sources) != x.shape[0]:
        raise InvalidArgument(f"{len(sources)} sources for {x.shape[0]} faces")
    if seedable is not None and len(seedable) != x.shape[0]:
        raise InvalidArgument(f"{len(seedable)} seedable flags for {x.shape[0]} faces")
    if not np.all(np.isfinite(x)):
        raise InvalidArgument("templates must be finite")
    return x


@dataclass(frozen=True)
class SourceCodes:
    """Each face's sources as small integers, and the (face, source) pairs flattened."""

    per_face: tuple[frozenset[int], ...]
    owner: npt.NDArray[np.int64]
    """Face of each pair."""
    code: npt.NDArray[np.int64]
    """Source of each pair."""


def source_codes(sources: Iterable[Source]) -> SourceCodes:
    """Number the sources in order of first appearance (a string is one source)."""
    seen: dict[str, int] = {}
    per_face = tuple(
        frozenset(seen.setdefault(t, len(seen)) for t in ((s,) if isinstance(s, str) else s))
        for s in sources
    )
    sizes = [len(f) for f in per_face]
    owner = np.repeat(np.arange(len(per_face), dtype=np.int64), sizes)
    code = np.fromiter((c for f in per_face for c in sorted(f)), dtype=np.int64, count=len(owner))
    return SourceCodes(per_face, owner, code)


def cannot_link(sources: Sequence[Source]) -> npt.NDArray[np.bool_]:
    """(n, n) mask: True where two different faces share a source (image or frame)."""
    codes = source_codes(sources)
    n = len(codes.per_face)
    mask = np.zeros((n, n), dtype=bool)
    order = np.argsort(codes.code, kind="stable")
    owners, by_code = codes.owner[order], codes.code[order]
    starts = np.flatnonzero(np.r_[True, by_code[1:] != by_code[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], by_code.size], strict=True):
        if hi - lo > 1:  # a source shared by several faces
            shared = owners[lo:hi]
            mask[np.ix_(shared, shared)] = True
    np.fill_diagonal(mask, False)
    return mask


SEARCH_CHUNK = 8192
"""Faces searched at a time for the k-NN graph: only edges at the threshold are kept, so memory
follows the edges, not faces × k."""


def edges_above(
    vectors: Vectors, threshold: float, *, k: int = 64
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Undirected k-nearest-neighbour edges (i < j) with similarity >= ``threshold``.

    Exact inner-product search (faiss ``IndexFlatIP``); ``k`` bounds the edges per face so a
    person with thousands of photos does not make the graph quadratic. Faces are searched
    :data:`SEARCH_CHUNK` at a time.
    """
    n = vectors.shape[0]
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    kk = min(k + 1, n)
    ends: list[npt.NDArray[np.int64]] = []
    starts: list[npt.NDArray[np.int64]] = []
    scores: list[npt.NDArray[np.float32]] = []
    chunks = -(-n // SEARCH_CHUNK)
    step = -(-n // chunks)  # equal chunks: none so small that faiss leaves its BLAS path
    for at in range(0, n, step):
        sims, nbrs = index.search(vectors[at : at + step], kk)
        keep = (nbrs >= 0) & (sims >= threshold)
        keep &= nbrs != np.arange(at, at + len(nbrs))[:, None]
        flat = np.flatnonzero(keep)  # row-major, as before
        del keep
        starts.append(flat // kk + at)
        ends.append(nbrs.reshape(-1)[flat])
        scores.append(sims.reshape(-1)[flat].astype(np.float32))
        del sims, nbrs, flat
    a, b = np.concatenate(starts), np.concatenate(ends)
    starts.clear()
    ends.clear()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    del a, b
    _, first = np.unique(lo * n + hi, return_index=True)
    return lo[first], hi[first], np.concatenate(scores)[first]


class UnionFind:
    """Disjoint sets over 0..n-1 (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra

    def labels(self) -> Labels:
        return relabel(np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64))


def groups(labels: Labels) -> list[npt.NDArray[np.intp]]:
    """Face indices (ascending) of each cluster 0..k-1, found in one sort, not k scans."""
    k = int(labels.max(initial=-1)) + 1
    members = np.flatnonzero(labels >= 0)
    order = members[np.argsort(labels[members], kind="stable")]
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(k)]


def relabel(labels: npt.ArrayLike) -> Labels:
    """Labels renumbered 0..k-1 in order of first appearance; -1 stays -1."""
    raw = np.asarray(labels, dtype=np.int64)
    out = np.full(raw.shape, -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, v in enumerate(raw.tolist()):
        if v >= 0:
            out[i] = seen.setdefault(v, len(seen))
    return out
