"""Slot-based faiss backends, and the exhaustive one: ``FaissFlatIndex``.

Slot-based indexes store vectors by dense slot inside faiss and map slots to template ids
themselves (see :class:`~faceledger.index._slots.SlotTable`), because faiss' flat and HNSW
structures cannot delete in place. faiss proposes a shortlist, which is re-ranked exactly from
the full float32 templates. Removal overwrites the slot's vector (its bytes leave memory and
saved files) and hides the slot from search with an ``IDSelectorBitmap``; flat indexes reclaim
dead slots at once, HNSW graphs are rebuilt off the request path (see ``factory``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import read_index_file, require, write_index_file
from faceledger.index._slots import SlotMembership, SlotTable
from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    VectorIndex,
    rerank,
    shortlist_size,
)

faiss: Any = _faiss  # the stubs shipped with faiss lack most SWIG attributes used here


class _SlotFaissIndex(SlotMembership, VectorIndex):
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

    def _prepare_add(self, vectors: VectorArray) -> None:
        """Train on the first batch if the backend needs it (hook)."""

    def _store_full(self, slots: IdArray, vectors: VectorArray) -> None:
        """Keep full templates of new slots when faiss itself does not (hook)."""

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
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size == 0:
            return
        self._prepare_add(vecs)
        self._index.add(vecs)
        self._store_full(self._slots.append(ids_), vecs)
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
        live_slots = self._slots.live_slots()
        live = self._fetch(self._slots.labels(live_slots)).copy()
        self._slots.compact()
        self._index = self._new_faiss()
        self._reset_full()
        if live.shape[0]:
            self._index.add(live)
            self._store_full(np.arange(live.shape[0], dtype=np.int64), live)

    def _reset_full(self) -> None:
        """Forget full templates kept outside faiss (hook, before a compaction re-adds them)."""

    @property
    def dead_fraction(self) -> float:
        return self._slots.dead_fraction

    # -- queries ----------------------------------------------------------------------------
    def _fetch(self, ids: IdArray) -> VectorArray:
        """Full templates of ids (the re-rank source)."""
        return self._stored()[self._slots_of(ids)]

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
    def _extra_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Arrays besides the faiss index and the slot labels that a save must keep (hook)."""
        return {}

    def _restore(self, arrays: dict[str, npt.NDArray[Any]], path: str | Path) -> None:
        """Take back what :meth:`_extra_arrays` saved (hook)."""

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], options: dict[str, Any]) -> Self:
        return cls(int(meta["dimension"]), str(meta["model_id"]), **meta["params"])

    def save(self, path: str | Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {
            "labels": self._slots.slot_labels(),
            "faiss": faiss.serialize_index(self._index),
            **self._extra_arrays(),
        }
        write_index_file(path, self.describe(), arrays)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        meta, arrays = read_index_file(path, cls.kind)
        index = cls._from_meta(meta, options)
        labels = require(arrays, "labels", path).astype(np.int64)
        try:
            fx = faiss.deserialize_index(np.ascontiguousarray(require(arrays, "faiss", path)))
        except RuntimeError as exc:
            raise IntegrityError(f"index file {path}: faiss data is damaged: {exc}") from None
        if fx.ntotal != labels.size or fx.d != index.dimension:
            raise IntegrityError(f"index file {path}: faiss data and ids do not match")
        index._index = fx
        index._slots = SlotTable.from_labels(labels)
        index._restore(arrays, path)
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
