"""Exact brute-force index in numpy: the oracle every other backend is compared against.

A float32 scan finds, per query, every template within a float-error margin of the k-th best
score; those are then scored in float64 by :func:`~faceledger.index.base.rerank`, so the
result is the exact top-k with ties broken by ascending id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError
from faceledger.index._persist import read_index_file, require, write_index_file
from faceledger.index._slots import SlotMembership, SlotTable, with_room
from faceledger.index.base import IdArray, SearchHits, VectorArray, VectorIndex, rerank

_SCAN_BLOCK = 1 << 24
"""float32 scores computed per block of queries (64 MiB)."""

_MARGIN = 1e-4
"""Float32 inner products of unit 128-d vectors err by < 1e-5; candidates within this of the
k-th score are re-scored in float64 so float32 rounding can never drop a true top-k hit."""

_COMPACT_AT = 0.25
"""Removed slots are reclaimed once they are this share of all slots."""


class ExactIndex(SlotMembership, VectorIndex):
    """Every template in one float32 array; search scans all of them."""

    kind = "exact"

    def __init__(self, dimension: int, model_id: str) -> None:
        super().__init__(dimension, model_id)
        self._slots = SlotTable()
        self._vecs = np.empty((0, self.dimension), dtype=np.float32)

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size == 0:
            return
        n = self._slots.n_slots
        self._vecs = with_room(self._vecs, n + ids_.size, n)
        slots = self._slots.append(ids_)
        self._vecs[slots] = vecs

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = self._check_ids(ids)
        gone = self._slots.kill(ids_)
        self._vecs[gone] = 0.0  # the template bytes do not linger in memory or in saved files
        if self._slots.dead_fraction >= _COMPACT_AT:
            keep = self._slots.compact()
            self._vecs = np.ascontiguousarray(self._vecs[keep])
        return int(gone.size)

    # -- queries ----------------------------------------------------------------------------
    def vectors(self, ids: npt.ArrayLike) -> VectorArray:
        """The stored templates of ``ids`` in that order (``IntegrityError`` if one is absent)."""
        slots = self._slots.lookup(self._check_ids(ids))
        if (slots < 0).any():
            raise IntegrityError("asked for the vector of an id that is not in the index")
        return self._vecs[slots]

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        n_slots = self._slots.n_slots
        if len(self) == 0 or q.shape[0] == 0:
            return SearchHits.empty(q.shape[0], k)
        stored = self._vecs[:n_slots]
        dead = self._slots.dead_slots()
        kk = min(k, len(self))
        wide = min(n_slots, kk + 32)
        margins = _MARGIN * np.maximum(1.0, np.linalg.norm(q, axis=1))
        rows_per_block = max(1, _SCAN_BLOCK // n_slots)
        shortlists: list[IdArray] = []
        for r0 in range(0, q.shape[0], rows_per_block):
            block = q[r0 : r0 + rows_per_block] @ stored.T
            block[:, dead] = -np.inf
            if wide < n_slots:
                part = np.argpartition(-block, wide - 1, axis=1)[:, :wide]
            else:
                part = np.broadcast_to(np.arange(n_slots), block.shape).copy()
            top = np.take_along_axis(block, part, axis=1)
            for j in range(block.shape[0]):
                row_top = top[j]
                kth = np.partition(row_top, wide - kk)[wide - kk] if wide > kk else row_top.min()
                floor = kth - margins[r0 + j]
                if wide < n_slots and row_top.min() >= floor:
                    # ties or near-ties reach past the wide shortlist: take all of them
                    cand = np.flatnonzero(block[j] >= floor)
                else:
                    cand = part[j][row_top >= floor]
                shortlists.append(cand.astype(np.int64))
        width = max(c.size for c in shortlists)
        cand_slots = np.full((q.shape[0], width), -1, dtype=np.int64)
        for i, c in enumerate(shortlists):
            cand_slots[i, : c.size] = c
        cand_ids = self._slots.labels(cand_slots)
        return rerank(q, cand_ids, self.vectors, k)

    # -- persistence ------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {}

    def memory_bytes(self) -> int:
        return int(self._vecs.nbytes + self._slots.nbytes)

    def save(self, path: str | Path) -> None:
        n = self._slots.n_slots
        write_index_file(
            path,
            self.describe(),
            {"labels": self._slots.slot_labels(), "vectors": self._vecs[:n]},
        )

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        meta, arrays = read_index_file(path, cls.kind)
        index = cls(int(meta["dimension"]), str(meta["model_id"]))
        labels = require(arrays, "labels", path).astype(np.int64)
        vecs = require(arrays, "vectors", path).astype(np.float32)
        if vecs.shape != (labels.size, index.dimension):
            raise IntegrityError(f"index file {path}: vectors and ids do not match")
        index._slots = SlotTable.from_labels(labels)
        index._vecs = np.ascontiguousarray(vecs)
        return index
