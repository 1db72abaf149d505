"""faiss HNSW backend: a navigable graph over the templates, exact re-rank of its shortlist.

``storage="sq8"`` (default) walks the graph on 8-bit scalar-quantised copies (4x less memory
traffic: about twice as fast at the same recall, measured in ``benchmarks/search_scale.py``)
and re-ranks from full templates kept beside it or read from ``rerank_source`` (the store);
``storage="flat"`` walks on the full float32 templates themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self, cast

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import require
from faceledger.index._slots import with_room
from faceledger.index.base import IdArray, RerankSource, VectorArray, as_vectors, fetch_checked
from faceledger.index.faiss_index import _SlotFaissIndex

faiss: Any = _faiss  # the stubs shipped with faiss lack most SWIG attributes used here

Storage = Literal["flat", "sq8"]

MIN_TRAIN = 1000
"""SQ8 learns each dimension's range: a first batch smaller than this is too few to learn from."""


class FaissHNSWIndex(_SlotFaissIndex):
    """HNSW graph (``m`` links per node); ``ef_search`` trades latency for recall."""

    kind = "faiss-hnsw"

    def __init__(
        self,
        dimension: int,
        model_id: str,
        *,
        m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 128,
        shortlist: int = 48,
        storage: Storage = "sq8",
        rerank_source: RerankSource | None = None,
    ) -> None:
        if m < 4 or ef_construction < 1 or ef_search < 1:
            raise InvalidArgument("HNSW needs m >= 4 and positive ef_construction, ef_search")
        if storage not in ("flat", "sq8"):
            raise InvalidArgument(f"HNSW storage must be 'flat' or 'sq8', got {storage!r}")
        if storage == "flat" and rerank_source is not None:
            raise InvalidArgument("flat HNSW re-ranks from its own templates: no rerank_source")
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.storage: Storage = storage
        self._source = rerank_source
        self._trained: bytes | None = None  # the empty trained SQ8 index, to start over from
        self._full = np.empty((0, dimension), dtype=np.float32)  # by slot (sq8, no source)
        super().__init__(dimension, model_id, shortlist=shortlist)

    # -- faiss structure --------------------------------------------------------------------
    def _new_faiss(self) -> Any:
        # L2 on unit vectors orders exactly as inner product; faiss' L2 HNSW is the tuned path.
        if self.storage == "flat":
            index = faiss.IndexHNSWFlat(self.dimension, self.m)
        elif self._trained is not None:
            index = faiss.deserialize_index(np.frombuffer(self._trained, dtype=np.uint8))
        else:
            index = faiss.IndexHNSWSQ(self.dimension, faiss.ScalarQuantizer.QT_8bit, self.m)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _storage(self) -> Any:
        return faiss.downcast_index(self._index.storage)

    def _search_params(self, selector: Any, k: int) -> Any:
        ef = max(self.ef_search, k)
        if selector is None:
            return faiss.SearchParametersHNSW(efSearch=ef)
        return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, vectors: npt.ArrayLike) -> None:
        """Learn the SQ8 value ranges from a sample of the gallery (no-op for flat storage)."""
        if self.storage == "flat":
            return
        if len(self):
            raise InvalidArgument("train an HNSW index before adding templates (or rebuild it)")
        vecs = as_vectors(vectors, self.dimension, what="training vectors")
        if vecs.shape[0] < MIN_TRAIN:
            raise InvalidArgument(
                f"SQ8 HNSW needs at least {MIN_TRAIN} training vectors, got {vecs.shape[0]}"
            )
        index = faiss.IndexHNSWSQ(self.dimension, faiss.ScalarQuantizer.QT_8bit, self.m)
        index.train(vecs)
        self._trained = faiss.serialize_index(index).tobytes()
        self._index = self._new_faiss()

    def _prepare_add(self, vectors: VectorArray) -> None:
        if self.is_trained:
            return
        if vectors.shape[0] < MIN_TRAIN:
            raise InvalidArgument(
                f"an SQ8 HNSW index learns from its first add, which needs at least {MIN_TRAIN} "
                "templates: call train() with a sample or use faceledger.index.factory.rebuild()"
            )
        self.train(vectors)

    # -- full templates for the exact re-rank -------------------------------------------------
    def _store_full(self, slots: IdArray, vectors: VectorArray) -> None:
        if self.storage == "flat" or self._source is not None:
            return
        self._full = with_room(self._full, int(slots.max()) + 1, self._full.shape[0])
        self._full[slots] = vectors

    def _reset_full(self) -> None:
        self._full = np.empty((0, self.dimension), dtype=np.float32)

    def _stored(self) -> VectorArray:
        if self.storage == "flat":
            return super()._stored()
        return self._full[: self._slots.n_slots]

    def _fetch(self, ids: IdArray) -> VectorArray:
        if self._source is None:
            return super()._fetch(ids)
        return fetch_checked(self._source, ids, self.dimension)

    # -- removal ------------------------------------------------------------------------------
    def _erase(self, slots: IdArray) -> None:
        """Replace each removed template by the mean of its live level-0 graph neighbours.

        faiss cannot unlink an HNSW node, so the node keeps routing searches through its
        region; a zeroed vector would cut tight clusters (one person's templates) off the
        graph. Every removed template is wiped before any surrogate is computed, and
        surrogates use live templates only, so no removed template's bytes survive.
        """
        if self.storage == "flat" or self._source is None:
            self._stored()[slots] = 0.0
        hnsw = self._index.hnsw
        neighbors = faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())
        offsets = faiss.rev_swig_ptr(hnsw.offsets.data(), hnsw.offsets.size())
        width = int(hnsw.nb_neighbors(0))
        surrogates = np.zeros((slots.size, self.dimension), dtype=np.float32)
        for i, slot in enumerate(slots):
            start = int(offsets[slot])
            near = neighbors[start : start + width].astype(np.int64)
            near = near[near >= 0]
            live = self._slots.labels(near)
            live = live[live >= 0]
            if live.size:
                mean = self._fetch(live).astype(np.float64).mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    surrogates[i] = mean / norm
        if self.storage == "flat":
            self._stored()[slots] = surrogates
            return
        sq = self._storage()
        codes = faiss.rev_swig_ptr(sq.codes.data(), sq.codes.size()).reshape(-1, sq.code_size)
        codes[slots] = sq.sa_encode(surrogates)

    # -- description and persistence ----------------------------------------------------------
    def memory_bytes(self) -> int:
        hnsw = self._index.hnsw
        graph = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        n = self._slots.n_slots
        codes = n * self.dimension * (4 if self.storage == "flat" else 1)
        full = self._full.nbytes if self.storage == "sq8" else 0
        return int(codes + graph + full + self._slots.nbytes)

    def params(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "shortlist": self.shortlist,
            "storage": self.storage,
            "external_rerank": self._source is not None,
        }

    def _extra_arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        if self._trained is not None:
            out["trained"] = np.frombuffer(self._trained, dtype=np.uint8)
        if self.storage == "sq8" and self._source is None:
            out["full"] = self._full[: self._slots.n_slots]
        return out

    def _restore(self, arrays: dict[str, npt.NDArray[Any]], path: str | Path) -> None:
        if "trained" in arrays:
            self._trained = arrays["trained"].tobytes()
        if self.storage == "sq8" and self._source is None:
            full = require(arrays, "full", path).astype(np.float32)
            if full.shape != (self._slots.n_slots, self.dimension):
                raise IntegrityError(f"index file {path}: full templates and ids do not match")
            self._full = np.ascontiguousarray(full)

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], options: dict[str, Any]) -> Self:
        """``rerank_source=`` must be given again for an index saved with one."""
        params = dict(meta["params"])
        external = bool(params.pop("external_rerank", False))
        source = cast(RerankSource | None, options.get("rerank_source"))
        if external and source is None:
            raise InvalidArgument("this HNSW index was saved with an external rerank source")
        if not external:
            source = None
        return cls(int(meta["dimension"]), str(meta["model_id"]), rerank_source=source, **params)
