"""The VectorIndex contract: one gallery's templates of one model, searched by cosine similarity.

Every backend (exact numpy, faiss flat/IVF/HNSW, Milvus) implements this class and passes
``tests/contract/test_index_contract.py`` with :class:`~faceledger.index.exact.ExactIndex` as
the oracle. Approximate backends only propose a shortlist; :func:`rerank` scores it exactly
(float64 inner products of the full float32 templates, ties broken by ascending id), so every
backend returns the same candidates in the same order whenever its shortlist holds them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from faceledger.errors import Conflict, IntegrityError, InvalidArgument, ModelMismatch
from faceledger.types import Template

IdArray = npt.NDArray[np.int64]
VectorArray = npt.NDArray[np.float32]
ScoreArray = npt.NDArray[np.float32]

RerankSource = Callable[[IdArray], VectorArray]
"""Returns the full float32 templates of the given ids, in that order (e.g. read from the store)."""

NORM_TOLERANCE = 1e-3
"""Stored vectors must have an L2 norm within this of 1."""

_RERANK_BLOCK = 1 << 22
"""Upper bound on gathered float64 elements per re-ranking block (32 MiB)."""
_NO_ID_LAST = np.iinfo(np.int64).max  # sorts padding after every real id


@dataclass(frozen=True, eq=False)
class SearchHits:
    """Top-k results of m queries: ``scores`` (m, k) descending cosine, ``ids`` (m, k).

    Rows with fewer than k stored templates are padded with id -1 and score -inf.
    """

    scores: ScoreArray
    ids: IdArray

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row(self, i: int) -> list[tuple[int, float]]:
        """The real hits of query ``i`` as ``(id, score)`` pairs, best first."""
        return [
            (int(t), float(s)) for t, s in zip(self.ids[i], self.scores[i], strict=True) if t >= 0
        ]

    @classmethod
    def empty(cls, m: int, k: int) -> SearchHits:
        return cls(
            scores=np.full((m, k), -np.inf, dtype=np.float32),
            ids=np.full((m, k), -1, dtype=np.int64),
        )


class VectorIndex(ABC):
    """The templates of ONE gallery made by ONE model, searchable by inner product.

    Ids are non-negative int64 (the store's template ids). Vectors are float32, shape (n, d),
    L2-normalised. Every mutating call validates all its input before changing anything, so a
    refused call leaves the index as it was.
    """

    kind: ClassVar[str]

    def __init__(self, dimension: int, model_id: str) -> None:
        if not isinstance(dimension, int | np.integer) or dimension <= 0:
            raise InvalidArgument(f"index dimension must be a positive integer, got {dimension!r}")
        if not model_id:
            raise InvalidArgument("index model_id must be a non-empty string")
        self.dimension = int(dimension)
        self.model_id = model_id

    # -- mutation ---------------------------------------------------------------------------
    @abstractmethod
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Store new templates; an id already present (or repeated) raises ``Conflict``."""

    @abstractmethod
    def remove(self, ids: npt.ArrayLike) -> int:
        """Forget the given ids (unknown ones are ignored); returns how many were removed."""

    # -- queries ----------------------------------------------------------------------------
    @abstractmethod
    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        """The k most similar stored templates of each query row (exactly re-ranked)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def ids(self) -> IdArray:
        """Every stored id, ascending."""

    @abstractmethod
    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Element-wise membership of ``ids``."""

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer) or isinstance(item, bool) or item < 0:
            return False
        return bool(self.contains(np.array([item], dtype=np.int64))[0])

    # -- persistence and description --------------------------------------------------------
    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the index atomically (temp file, fsync, rename): a crash leaves the old file."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        """Read an index written by :meth:`save` (``IntegrityError`` if corrupt)."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The backend's construction parameters (JSON-serialisable)."""

    def describe(self) -> dict[str, Any]:
        """Kind, model, dimension and parameters: what a gallery records about its index."""
        return {
            "kind": self.kind,
            "model_id": self.model_id,
            "dimension": self.dimension,
            "params": self.params(),
        }

    @abstractmethod
    def memory_bytes(self) -> int:
        """Approximate bytes this index holds in memory (excluding any external rerank source)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release connections or files (no-op for in-memory backends)."""

    # -- conveniences built on the abstract API ---------------------------------------------
    def add_templates(self, ids: npt.ArrayLike, templates: Sequence[Template]) -> None:
        """Add :class:`Template` objects, refusing any made by another model."""
        for t in templates:
            if t.model_id != self.model_id:
                raise ModelMismatch(
                    f"index holds templates of model {self.model_id!r}, got one of {t.model_id!r}"
                )
        if not templates:
            self.add(np.empty(0, dtype=np.int64), np.empty((0, self.dimension), np.float32))
            return
        self.add(ids, np.stack([t.vector for t in templates]))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id} d={self.dimension} n={len(self)}>"

    # -- validation helpers for backends ----------------------------------------------------
    def _check_ids(self, ids: npt.ArrayLike) -> IdArray:
        return as_ids(ids)

    def _check_vectors(self, vectors: npt.ArrayLike, n: int) -> VectorArray:
        vecs = as_vectors(vectors, self.dimension, what="vectors")
        if vecs.shape[0] != n:
            raise InvalidArgument(f"{n} ids but {vecs.shape[0]} vectors")
        norms = np.linalg.norm(vecs.astype(np.float64), axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if bad.size:
            raise InvalidArgument(
                f"vectors must be L2-normalised: row {int(bad[0])} has norm {norms[bad[0]]:.4f}"
            )
        return vecs

    def _check_add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> tuple[IdArray, VectorArray]:
        """An add's ids and vectors, validated; ``Conflict`` for an id stored or repeated."""
        ids_ = self._check_ids(ids)
        vecs = self._check_vectors(vectors, ids_.size)
        check_new_ids(ids_, self.contains(ids_))
        return ids_, vecs

    def _check_queries(self, queries: npt.ArrayLike, k: int) -> VectorArray:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidArgument(f"k must be a positive integer, got {k!r}")
        return as_vectors(queries, self.dimension, what="queries")


def check_new_ids(ids: IdArray, present: npt.NDArray[np.bool_]) -> None:
    """Refuse ids already stored or repeated within the batch (``Conflict``)."""
    if present.any():
        dup = ids[present]
        raise Conflict(f"{dup.size} id(s) already in the index, e.g. {int(dup[0])}")
    if ids.size > 1:
        s = np.sort(ids)
        rep = s[1:][s[1:] == s[:-1]]
        if rep.size:
            raise Conflict(f"id {int(rep[0])} appears more than once in one add")


def as_ids(ids: npt.ArrayLike) -> IdArray:
    """A 1-D int64 array of non-negative ids, or ``InvalidArgument``."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidArgument(f"ids must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"ids must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise InvalidArgument("ids must fit in int64")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if out.min() < 0:
        raise InvalidArgument("ids must be non-negative (-1 marks padding in results)")
    return out


def as_vectors(vectors: npt.ArrayLike, dimension: int, *, what: str) -> VectorArray:
    """A C-contiguous float32 (n, dimension) array of finite values."""
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be a numeric array: {exc}") from None
    if arr.ndim != 2:
        raise InvalidArgument(f"{what} must be a 2-D array (n, {dimension}), got shape {arr.shape}")
    if arr.shape[1] != dimension:
        raise ModelMismatch(
            f"{what} have dimension {arr.shape[1]}, this index holds {dimension}-d templates"
        )
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(arr)


def fetch_checked(source: RerankSource, ids: IdArray, dimension: int) -> VectorArray:
    """Full templates of ``ids`` from an external re-rank source (the store), as float32;
    ``IntegrityError`` when it does not return one ``dimension``-d row per id."""
    vecs = np.asarray(source(ids), dtype=np.float32)
    if vecs.shape != (ids.size, dimension):
        raise IntegrityError(
            f"rerank source returned shape {vecs.shape} for {ids.size} ids; "
            "the store and the index disagree"
        )
    return vecs


def rerank(
    queries: VectorArray,
    candidates: IdArray,
    fetch: RerankSource,
    k: int,
    *,
    rows: IdArray | None = None,
) -> SearchHits:
    """Score each row's candidate ids exactly and keep the best k.

    ``candidates`` is (m, c) with -1 for "no candidate" and no id twice in a row. Scores are
    float64 inner products of the full templates returned by ``fetch``; order is descending
    score, then ascending id. ``fetch`` is called with the candidate ids, or, when ``rows``
    (same shape) is given, with those keys instead: a backend's own row numbers, which spare
    it an id-to-row look-up per candidate.
    """
    m, c = candidates.shape
    if m == 0 or c == 0:
        return SearchHits.empty(m, k)
    if m == 1:
        return _rerank_one(queries, candidates, fetch, k, rows)
    valid = candidates >= 0
    d = queries.shape[1]
    q64 = queries.astype(np.float64)
    scores = np.full((m, c), -np.inf, dtype=np.float64)
    rows_per_block = max(1, _RERANK_BLOCK // (c * d))
    for r0 in range(0, m, rows_per_block):
        r1 = min(m, r0 + rows_per_block)
        block_valid = valid[r0:r1]
        wanted = (candidates if rows is None else rows)[r0:r1][block_valid]
        if wanted.size == 0:
            continue
        vecs = fetch_checked(fetch, wanted, d).astype(np.float64)
        if wanted.size == block_valid.size:
            grid = vecs.reshape(r1 - r0, c, d)
        else:  # padded rows: zero vectors, their scores masked below
            grid = np.zeros((r1 - r0, c, d), dtype=np.float64)
            grid[block_valid] = vecs
        # one mat-vec per query row (not a per-candidate copy of the query: 10x slower)
        block = np.matmul(grid, q64[r0:r1, :, None])[:, :, 0]
        scores[r0:r1] = np.where(block_valid, block, -np.inf)
    # Primary key: descending score; secondary: ascending id (padding sorts last).
    keys = np.where(valid, candidates, _NO_ID_LAST)
    order = np.lexsort((keys, -scores), axis=-1)[:, :k]
    row = np.arange(m)[:, None]
    out_ids = candidates[row, order]
    out_scores = scores[row, order].astype(np.float32)
    out_ids[~np.isfinite(out_scores)] = -1
    if order.shape[1] < k:
        pad = k - order.shape[1]
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return SearchHits(scores=np.ascontiguousarray(out_scores), ids=np.ascontiguousarray(out_ids))


def _rerank_one(
    query: VectorArray, candidates: IdArray, fetch: RerankSource, k: int, rows: IdArray | None
) -> SearchHits:
    valid = candidates[0] >= 0
    ids = candidates[0][valid]
    if ids.size == 0:
        return SearchHits.empty(1, k)
    keys = ids if rows is None else rows[0][valid]
    return rank_one(query[0], ids, fetch_checked(fetch, keys, query.shape[1]), k)


def rank_one(query: VectorArray, ids: IdArray, vecs: VectorArray, k: int) -> SearchHits:
    """The exact top-k of one query (a 1-D template) among distinct real candidates ``ids``
    whose full templates are ``vecs``: what :func:`rerank` does for one row (float64 scores,
    descending, ties by ascending id), in as few numpy calls as possible. It runs right after
    an index scan has flushed the CPU caches, where each call costs several microseconds."""
    scores = vecs.astype(np.float64) @ query.astype(np.float64)
    order = np.lexsort((ids, -scores))[:k]
    if order.size == k:
        return SearchHits(scores=scores[order].astype(np.float32)[None], ids=ids[order][None])
    out_ids = np.full((1, k), -1, dtype=np.int64)
    out_scores = np.full((1, k), -np.inf, dtype=np.float32)
    out_ids[0, : order.size] = ids[order]
    out_scores[0, : order.size] = scores[order]
    return SearchHits(scores=out_scores, ids=out_ids)


def shortlist_size(k: int, shortlist: int, limit: int) -> int:
    """How many candidates an approximate backend should fetch for an exact top-k re-rank."""
    return max(1, min(max(k, shortlist), limit))
