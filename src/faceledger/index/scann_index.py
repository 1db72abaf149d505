"""ScaNN backend: the gallery split over ``shards`` ScaNN searchers, searched side by side.

Google's ScaNN (``pip install 'faceledger[scale]'``, Linux x86-64 wheels) is the one library
measured here that answers a 1M-template gallery in about 1 ms at recall@10 0.99 on one core
(benchmarks/README_search_scale.md). Each shard (:class:`ScannShard`) is a k-means tree with
SOAR spilling and anisotropic 4-bit codes, re-scored on ScaNN's float copy and re-ranked
exactly. ScaNN's search releases the GIL, so a single query searches two half-size shards on
two cores at once: half the leaves each, for the same recall, in ~0.8 ms at 1M instead of
~1.2 ms measured in the same hour. Each shard returns its exact top-k; re-ranking their union
exactly gives the same answer one searcher gives.

New templates go to the shard holding fewest; removal rewrites only the shards that held
the removed ids (see :mod:`faceledger.index._scann_shard` for why ScaNN's own deletion is
never used).
"""

from __future__ import annotations

import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import read_index_file, write_index_file
from faceledger.index._scann_shard import (
    MIN_TRAIN_PER_LEAF,
    TRAIN_SAMPLE,
    ScannShard,
    available,
)
from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    VectorIndex,
    as_vectors,
    rerank,
)

__all__ = ["MIN_TRAIN_PER_LEAF", "TRAIN_SAMPLE", "ScannIndex", "ScannShard", "available"]

_SIDE_BY_SIDE_BELOW = 16
"""Query batches smaller than this search the shards on parallel threads; larger batches
use ScaNN's own thread pool inside each shard, one shard after the other."""


def _build_shard(shard: ScannShard, ids: IdArray, vecs: VectorArray, n_train: int) -> None:
    shard.build(ids, vecs, n_train=n_train)


class ScannIndex(VectorIndex):
    """``shards`` ScaNN trees of ``leaves`` cells each; ``leaves_to_search`` per shard."""

    kind = "scann"

    def __init__(
        self,
        dimension: int,
        model_id: str,
        *,
        shards: int = 1,
        leaves: int = 2000,
        leaves_to_search: int = 150,
        reorder: int = 200,
        shortlist: int = 32,
        soar_lambda: float = 1.5,
        aq_threshold: float = 0.2,
    ) -> None:
        super().__init__(dimension, model_id)
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 64:
            raise InvalidArgument(f"shards must be an integer from 1 to 64, got {shards!r}")
        self._shard_params: dict[str, Any] = {
            "leaves": leaves,
            "leaves_to_search": leaves_to_search,
            "reorder": reorder,
            "shortlist": shortlist,
            "soar_lambda": soar_lambda,
            "aq_threshold": aq_threshold,
        }
        self._shards = [
            ScannShard(dimension, model_id, **self._shard_params) for _ in range(shards)
        ]
        self._pool: ThreadPoolExecutor | None = None

    # -- shards and their settings --------------------------------------------------------------
    @property
    def shards(self) -> int:
        return len(self._shards)

    @property
    def leaves_to_search(self) -> int:
        return self._shards[0].leaves_to_search

    @leaves_to_search.setter
    def leaves_to_search(self, value: int) -> None:
        if not 1 <= int(value) <= self._shards[0].leaves:
            raise InvalidArgument("leaves_to_search must be between 1 and leaves")
        for shard in self._shards:
            shard.leaves_to_search = int(value)
        self._shard_params["leaves_to_search"] = int(value)

    def _each(self, fn: Any, args: list[tuple[Any, ...]]) -> list[Any]:
        """``fn(shard, *args[i])`` for shard i, the first on this thread and the rest on the
        pool, side by side (ScaNN releases the GIL while it trains, encodes and searches)."""
        if len(self._shards) == 1:
            return [fn(self._shards[0], *args[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._shards) - 1, "faceledger-scann")
        later: list[Future[Any]] = [
            self._pool.submit(fn, shard, *a)
            for shard, a in zip(self._shards[1:], args[1:], strict=True)
        ]
        first = fn(self._shards[0], *args[0])
        return [first, *(f.result() for f in later)]

    def set_threads(self, threads: int) -> None:
        """Threads each shard's ScaNN uses for a batch of queries."""
        for shard in self._shards:
            shard.set_threads(threads)

    # -- training ---------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return all(s.is_trained for s in self._shards)

    @property
    def min_train_size(self) -> int:
        return self._shards[0].min_train_size * len(self._shards)

    def train(self, vectors: npt.ArrayLike) -> None:
        """Train every shard's tree and codes on the same sample (only anchors are kept)."""
        vecs = as_vectors(vectors, self.dimension, what="training vectors")
        self._each(ScannShard.train, [(vecs,)] * len(self._shards))

    def build(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, *, n_train: int) -> None:
        """Fill an empty, untrained index: an equal part to each shard, built side by side,
        each shard trained on up to ``n_train`` of its templates."""
        if len(self) or any(s.is_trained for s in self._shards):
            raise InvalidArgument("build() fills an empty, untrained ScaNN index")
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size < self.min_train_size:
            raise InvalidArgument(
                f"{len(self._shards)} ScaNN shards of {self._shards[0].leaves} leaves need at "
                f"least {self.min_train_size} templates to learn from, got {ids_.size}"
            )
        bounds = np.linspace(0, ids_.size, len(self._shards) + 1).astype(int)
        parts = [(ids_[a:b], vecs[a:b], n_train) for a, b in itertools.pairwise(bounds)]
        self._each(_build_shard, parts)

    def trained_copy(self) -> ScannIndex:
        """A new, empty index with the same parameters, trees and codebooks."""
        if not self.is_trained:
            raise InvalidArgument("this ScaNN index is not trained")
        twin = ScannIndex(self.dimension, self.model_id, **self.params())
        twin._shards = [s.trained_copy() for s in self._shards]
        return twin

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size == 0:
            return
        if not self.is_trained:  # the first add trains (refused when it is too small)
            self.build(ids_, vecs, n_train=TRAIN_SAMPLE)
            return
        min(self._shards, key=len).add(ids_, vecs)

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = self._check_ids(ids)
        return sum(shard.remove(ids_) for shard in self._shards if shard.contains(ids_).any())

    # -- queries ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)

    def ids(self) -> IdArray:
        return np.sort(np.concatenate([s.ids() for s in self._shards]))

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        ids_ = self._check_ids(ids)
        found = np.zeros(ids_.shape, dtype=np.bool_)
        for s in self._shards:
            found |= s.contains(ids_)
        return found

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        if len(self._shards) == 1 or q.shape[0] >= _SIDE_BY_SIDE_BELOW:
            parts = [s.search(q, k) for s in self._shards]
        else:
            parts = self._each(ScannShard.search, [(q, k)] * len(self._shards))
        if len(parts) == 1:
            return parts[0]
        # each shard's exact top-k, re-ranked together (float32 scores could tie where the
        # float64 ones do not, so merging them by score alone could misorder near-ties)
        return rerank(q, np.concatenate([p.ids for p in parts], axis=1), self._fetch, k)

    def _fetch(self, ids: IdArray) -> VectorArray:
        out = np.empty((ids.size, self.dimension), dtype=np.float32)
        for shard in self._shards:
            mine = shard.contains(ids)
            if mine.any():
                out[mine] = shard.vectors(ids[mine])
        return out

    # -- description and persistence ----------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"shards": len(self._shards), **self._shards[0].params()}

    def memory_bytes(self) -> int:
        return sum(s.memory_bytes() for s in self._shards)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def save(self, path: str | Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {}
        for i, shard in enumerate(self._shards):
            arrays.update({f"shard{i}.{name}": a for name, a in shard.to_arrays().items()})
        header = {
            "kind": self.kind,
            "model_id": self.model_id,
            "dimension": self.dimension,
            "params": self.params(),
        }
        write_index_file(path, header, arrays)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        meta, arrays = read_index_file(path, cls.kind)
        try:
            index = cls(int(meta["dimension"]), str(meta["model_id"]), **meta["params"])
        except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
            raise IntegrityError(f"index file {path}: bad header ({exc})") from None
        seen: set[int] = set()
        for i, shard in enumerate(index._shards):
            prefix = f"shard{i}."
            own = {n[len(prefix) :]: a for n, a in arrays.items() if n.startswith(prefix)}
            shard.restore(own, path)
            held = set(shard.ids().tolist())
            if seen & held:
                raise IntegrityError(f"index file {path}: an id is held by two shards")
            seen |= held
        return index
