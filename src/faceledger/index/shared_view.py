"""A gallery's index shared by several processes (Milvus), seen through one process.

Searches go to the shared index. What a process asks about the index's membership (its ids,
its size: the cohort and FPIR caches key on them) is remembered until the gallery's generation
in the store moves, instead of being read over the network at every search; the manager
forgets it then (:meth:`SharedIndexView.invalidate`). The process's own writes update it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from faceledger.index.base import IdArray, SearchHits, VectorIndex
from faceledger.index.milvus_index import MilvusIndex


class SharedIndexView(VectorIndex):
    kind: ClassVar[str] = MilvusIndex.kind

    def __init__(self, inner: MilvusIndex) -> None:
        super().__init__(inner.dimension, inner.model_id)
        self.inner = inner
        self._ids: IdArray | None = None

    def invalidate(self) -> None:
        """Another process changed the gallery: read its membership again when asked."""
        self._ids = None

    def _known(self) -> IdArray:
        if self._ids is None:
            self._ids = self.inner.ids()
        return self._ids

    # -- mutation: the shared index, then what this process remembers ----------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        self.inner.add(ids, vectors)
        self._also(ids)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        self.inner.upsert(ids, vectors)
        self._also(ids)

    def _also(self, ids: npt.ArrayLike) -> None:
        if self._ids is not None:
            self._ids = np.union1d(self._ids, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: npt.ArrayLike) -> int:
        gone = self.inner.remove(ids)
        if self._ids is not None:
            self._ids = np.setdiff1d(self._ids, np.asarray(ids, dtype=np.int64))
        return gone

    def drop(self) -> None:
        self.inner.drop()
        self._ids = np.zeros(0, dtype=np.int64)

    def compact(self, wait: float | None = None) -> None:
        self.inner.compact(wait)

    # -- queries ---------------------------------------------------------------------------
    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        return self.inner.search(queries, k)

    def __len__(self) -> int:
        return int(self._known().size)

    def ids(self) -> IdArray:
        return self._known().copy()

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        if self._ids is None:  # a few ids: asked of the index, not all of its ids read
            return self.inner.contains(ids)
        return np.isin(np.asarray(ids, dtype=np.int64), self._ids)

    # -- description and persistence -------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self.inner.save(path)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        raise TypeError("a shared view wraps an open index; load the backend itself")

    def params(self) -> dict[str, Any]:
        return self.inner.params()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes()

    def close(self) -> None:
        self.inner.close()
