"""faiss backends that keep full float32 templates: flat (exhaustive) and HNSW (graph).

Both store vectors by dense slot inside faiss and map slots to template ids themselves (see
:class:`~faceledger.index._slots.SlotTable`). faiss proposes a shortlist; the shortlist is
re-ranked exactly from the same stored vectors, read zero-copy from faiss memory. Removal
zeroes the slot's vector and hides it from search with an ``IDSelectorBitmap``; flat indexes
reclaim dead slots at once, HNSW graphs are rebuilt off the request path (see ``factory``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import read_index_file, require, write_index_file
from faceledger.index._slots import SlotTable, check_new_ids
from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    VectorIndex,
    rerank,
    shortlist_size,
)

faiss: Any = _faiss  # the stubs shipped with faiss lack most SWIG attributes used here


class _SlotFaissIndex(VectorIndex):
    """Shared logic: a faiss index whose labels are slots, whose storage is an IndexFlat."""

    _compact_at: float | None = None
    """Dead share that triggers in-place compaction (None: never, leave it to a rebuild)."""

    def __init__(self, dimension: int, model_id: str, *, shortlist: int) -> None:
        super().__init__(dimension, model_id)
        if shortlist < 1:
            raise InvalidArgument("shortlist must be at least 1")
        self.shortlist = int(shortlist)
        self._slots = SlotTable()
        self._index = self._new_faiss()
        self._storage_of: Any = None
        self._storage_cache: Any = None

    # -- backend hooks ----------------------------------------------------------------------
    def _new_faiss(self) -> Any:
        raise NotImplementedError

    def _storage(self) -> Any:
        """The faiss IndexFlat that holds the vectors by slot."""
        raise NotImplementedError

    def _search_params(self, selector: Any, k: int) -> Any:
        raise NotImplementedError

    def _stored(self) -> VectorArray:
        """Zero-copy, writable view of the stored vectors (valid until the next add)."""
        n = self._slots.n_slots
        if n == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        if self._storage_of is not self._index:
            self._storage_cache = self._storage()
            self._storage_of = self._index
        ptr = self._storage_cache.get_xb()
        view: VectorArray = faiss.rev_swig_ptr(ptr, n * self.dimension).reshape(n, self.dimension)
        return view

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_ = self._check_ids(ids)
        vecs = self._check_vectors(vectors, ids_.size)
        check_new_ids(ids_, self._slots.contains(ids_))
        if ids_.size == 0:
            return
        self._index.add(vecs)
        self._slots.append(ids_)
        if self._index.ntotal != self._slots.n_slots:
            raise IntegrityError("faiss index and slot table disagree after add")

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = self._check_ids(ids)
        gone = self._slots.kill(ids_)
        if gone.size:
            self._erase(gone)
        if self._compact_at is not None and self._slots.dead_fraction >= self._compact_at:
            self.compact()
        return int(gone.size)

    def _erase(self, slots: IdArray) -> None:
        """Overwrite removed templates so their bytes leave memory and later saved files."""
        self._stored()[slots] = 0.0

    def compact(self) -> None:
        """Rebuild the faiss structure from the live vectors only (O(n); slow for HNSW)."""
        live = self._stored()[self._slots.live_slots()].copy()
        self._slots.compact()
        self._index = self._new_faiss()
        if live.shape[0]:
            self._index.add(live)

    @property
    def dead_fraction(self) -> float:
        return self._slots.dead_fraction

    # -- queries ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slots)

    def ids(self) -> IdArray:
        return self._slots.ids()

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        return self._slots.contains(self._check_ids(ids))

    def _fetch(self, ids: IdArray) -> VectorArray:
        slots = self._slots.lookup(ids)
        if (slots < 0).any():
            raise IntegrityError("a shortlisted id has no stored vector")
        return self._stored()[slots]

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        if len(self) == 0 or q.shape[0] == 0:
            return SearchHits.empty(q.shape[0], k)
        c = shortlist_size(k, self.shortlist, self._slots.n_slots)
        bitmap = None
        selector = None
        if self._slots.n_dead:
            bitmap = self._slots.live_bitmap()
            selector = faiss.IDSelectorBitmap(self._slots.n_slots, faiss.swig_ptr(bitmap))
        _, slots = self._index.search(q, c, params=self._search_params(selector, c))
        del bitmap  # the selector read it during search only
        return rerank(q, self._slots.labels(slots.astype(np.int64)), self._fetch, k)

    def memory_bytes(self) -> int:
        return int(self._slots.n_slots * self.dimension * 4 + self._slots.nbytes)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        blob = faiss.serialize_index(self._index)
        write_index_file(
            path, self.describe(), {"labels": self._slots.slot_labels(), "faiss": blob}
        )

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        meta, arrays = read_index_file(path, cls.kind)
        index = cls(int(meta["dimension"]), str(meta["model_id"]), **meta["params"])
        labels = require(arrays, "labels", path).astype(np.int64)
        try:
            fx = faiss.deserialize_index(np.ascontiguousarray(require(arrays, "faiss", path)))
        except RuntimeError as exc:
            raise IntegrityError(f"index file {path}: faiss data is damaged: {exc}") from None
        if fx.ntotal != labels.size or fx.d != index.dimension:
            raise IntegrityError(f"index file {path}: faiss data and ids do not match")
        index._index = fx
        index._slots = SlotTable.from_labels(labels)
        return index


class FaissFlatIndex(_SlotFaissIndex):
    """Exhaustive inner-product search in faiss (exact; faster top-k than numpy)."""

    kind = "faiss-flat"
    _compact_at = 0.25

    def __init__(self, dimension: int, model_id: str, *, shortlist: int = 32) -> None:
        super().__init__(dimension, model_id, shortlist=shortlist)

    def _new_faiss(self) -> Any:
        return faiss.IndexFlatIP(self.dimension)

    def _storage(self) -> Any:
        return self._index

    def _search_params(self, selector: Any, k: int) -> Any:
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def params(self) -> dict[str, Any]:
        return {"shortlist": self.shortlist}


class FaissHNSWIndex(_SlotFaissIndex):
    """HNSW graph over the full templates; ``ef_search`` trades latency for recall."""

    kind = "faiss-hnsw"

    def __init__(
        self,
        dimension: int,
        model_id: str,
        *,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 96,
        shortlist: int = 48,
    ) -> None:
        if m < 4 or ef_construction < 1 or ef_search < 1:
            raise InvalidArgument("HNSW needs m >= 4 and positive ef_construction, ef_search")
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        super().__init__(dimension, model_id, shortlist=shortlist)

    def _new_faiss(self) -> Any:
        # L2 on unit vectors orders exactly as inner product; faiss' L2 HNSW is the tuned path.
        index = faiss.IndexHNSWFlat(self.dimension, self.m)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _storage(self) -> Any:
        return faiss.downcast_index(self._index.storage)

    def _search_params(self, selector: Any, k: int) -> Any:
        ef = max(self.ef_search, k)
        if selector is None:
            return faiss.SearchParametersHNSW(efSearch=ef)
        return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)

    def _erase(self, slots: IdArray) -> None:
        """Replace each removed template by the mean of its live level-0 graph neighbours.

        faiss cannot unlink an HNSW node, so the node keeps routing searches through its
        region; a zeroed vector would cut tight clusters (one person's templates) off the
        graph. Every removed template is wiped before any surrogate is computed, and
        surrogates use live templates only, so no removed template's bytes survive.
        """
        stored = self._stored()
        stored[slots] = 0.0
        hnsw = self._index.hnsw
        neighbors = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
        offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), hnsw.offsets.size())
        width = int(hnsw.nb_neighbors(0))
        for slot in slots:
            start = int(offsets[slot])
            near = neighbors[start : start + width].astype(np.int64)
            near = near[near >= 0]
            near = near[self._slots.labels(near) >= 0]
            if near.size:
                mean = stored[near].astype(np.float64).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    stored[slot] = mean / norm

    def memory_bytes(self) -> int:
        hnsw = self._index.hnsw
        graph = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return int(super().memory_bytes() + graph)

    def params(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "shortlist": self.shortlist,
        }
