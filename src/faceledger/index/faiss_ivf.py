"""faiss IVF backend (inverted lists) with flat, SQ8 or PQ codes, re-ranked with full templates.

``pq4fs`` is PQ with 4-bit codes laid out for faiss' SIMD "fast scan" (``pq_m`` half-bytes per
template): a coarser code than 8-bit PQ, but scanned ~4x faster, so the same cells are probed
in a fraction of the time and the larger shortlist it needs is cheap to re-rank.

The compressed codes only propose a shortlist; full float32 templates for the exact re-rank
come from ``rerank_source`` (e.g. the store, so the index stays at code size + 8 bytes per
template in memory) or, without one, from an internal :class:`ExactIndex` copy. The index
must be trained (k-means on a sample of the gallery) before it holds anything: use
:meth:`FaissIVFIndex.train` or :func:`faceledger.index.factory.rebuild`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self, cast

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import read_index_file, require, write_index_file
from faceledger.index._slots import IdSet
from faceledger.index.base import (
    IdArray,
    RerankSource,
    SearchHits,
    VectorArray,
    VectorIndex,
    as_vectors,
    fetch_checked,
    rerank,
    shortlist_size,
)
from faceledger.index.exact import ExactIndex

Encoding = Literal["flat", "sq8", "pq", "pq4fs"]
_ENCODINGS = ("flat", "sq8", "pq", "pq4fs")
_PQ = ("pq", "pq4fs")

faiss: Any = _faiss  # the stubs shipped with faiss lack most SWIG attributes used here


class FaissIVFIndex(VectorIndex):
    """Inverted-file index: ``nlist`` k-means cells, ``nprobe`` of them scanned per query."""

    kind = "faiss-ivf"

    def __init__(
        self,
        dimension: int,
        model_id: str,
        *,
        nlist: int = 1024,
        encoding: Encoding = "sq8",
        nprobe: int = 32,
        pq_m: int = 32,
        pq_bits: int = 8,
        shortlist: int = 100,
        rerank_source: RerankSource | None = None,
    ) -> None:
        super().__init__(dimension, model_id)
        if encoding not in _ENCODINGS:
            raise InvalidArgument(f"IVF encoding must be one of {_ENCODINGS}, got {encoding!r}")
        if nlist < 1 or nprobe < 1 or shortlist < 1:
            raise InvalidArgument("nlist, nprobe and shortlist must be positive")
        if encoding == "pq4fs":
            pq_bits = 4
        if encoding in _PQ and (pq_m < 1 or self.dimension % pq_m or not 1 <= pq_bits <= 16):
            raise InvalidArgument(
                f"PQ needs pq_m dividing the dimension {self.dimension} and 1 <= pq_bits <= 16"
            )
        self.nlist = int(nlist)
        self.encoding: Encoding = encoding
        self.nprobe = int(nprobe)
        self.pq_m = int(pq_m)
        self.pq_bits = int(pq_bits)
        self.shortlist = int(shortlist)
        self._source = rerank_source
        self._full: ExactIndex | None = (
            None if rerank_source is not None else ExactIndex(dimension, model_id)
        )
        self._ids = IdSet()
        self._index = self._new_faiss()

    def _new_faiss(self) -> Any:
        d = self.dimension
        quantizer = faiss.IndexFlatL2(d)
        # L2 on unit vectors orders exactly as inner product; faiss' L2 IVF is the tuned path.
        if self.encoding == "flat":
            index = faiss.IndexIVFFlat(quantizer, d, self.nlist, faiss.METRIC_L2)
        elif self.encoding == "sq8":
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, d, self.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
            )
        elif self.encoding == "pq":
            index = faiss.IndexIVFPQ(quantizer, d, self.nlist, self.pq_m, self.pq_bits)
        else:
            # codes of the vector itself, not of its residual to the cell (faiss' default
            # here, and what benchmarks/search_scale.py measured): one lookup table per query
            index = faiss.IndexIVFPQFastScan(quantizer, d, self.nlist, self.pq_m, 4)
            index.by_residual = False
        index.own_fields = True
        quantizer.this.disown()  # the IVF index frees its quantizer
        index.nprobe = self.nprobe
        return index

    # -- training ---------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def min_train_size(self) -> int:
        return max(self.nlist, 2**self.pq_bits if self.encoding in _PQ else 1)

    def centroids(self) -> VectorArray:
        """The trained cell centres (nlist, d), e.g. to train a differently encoded twin."""
        if not self.is_trained:
            raise InvalidArgument("this IVF index is not trained")
        quantizer = faiss.downcast_index(self._index.quantizer)
        out: VectorArray = (
            faiss.rev_swig_ptr(quantizer.get_xb(), self.nlist * self.dimension)
            .reshape(self.nlist, self.dimension)
            .copy()
        )
        return out

    def train(
        self,
        vectors: npt.ArrayLike,
        *,
        seed: int = 1234,
        centroids: npt.ArrayLike | None = None,
    ) -> None:
        """Learn the cells (and codebooks) from a sample of the gallery's templates.

        ``centroids`` (nlist, d) reuses cells trained before and skips the k-means.
        """
        if len(self):
            raise InvalidArgument("train an IVF index before adding templates (or rebuild it)")
        vecs = as_vectors(vectors, self.dimension, what="training vectors")
        if vecs.shape[0] < self.min_train_size:
            raise InvalidArgument(
                f"IVF with nlist={self.nlist} ({self.encoding}) needs at least "
                f"{self.min_train_size} training vectors, got {vecs.shape[0]}"
            )
        index = self._new_faiss()
        if centroids is not None:
            cells = as_vectors(centroids, self.dimension, what="centroids")
            if cells.shape[0] != self.nlist:
                raise InvalidArgument(f"{cells.shape[0]} centroids for nlist={self.nlist}")
            index.quantizer.add(cells)
            index.quantizer.is_trained = True
        index.cp.seed = seed
        index.cp.niter = 20
        index.cp.min_points_per_centroid = 1  # min_train_size is checked above; no stderr noise
        if self.encoding in _PQ:
            # faiss' low-dimensional k-means is slow: 64 points per code word and 15 rounds
            # train 32 codebooks in seconds instead of minutes, at no measurable recall cost
            index.pq.cp.seed = seed
            index.pq.cp.niter = 15
            index.pq.cp.max_points_per_centroid = 64
            index.pq.cp.min_points_per_centroid = 1
        index.train(vecs)
        self._index = index

    def trained_copy(self, *, rerank_source: RerankSource | None = None) -> FaissIVFIndex:
        """A new, empty index with the same parameters, cells and codebooks (no re-training)."""
        if not self.is_trained:
            raise InvalidArgument("this IVF index is not trained")
        params = self.params()
        params.pop("external_rerank")
        twin = FaissIVFIndex(self.dimension, self.model_id, rerank_source=rerank_source, **params)
        empty = faiss.clone_index(self._index)
        empty.reset()
        empty.nprobe = self.nprobe
        twin._index = empty
        return twin

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size == 0:
            return
        if not self.is_trained:
            raise InvalidArgument(
                "this IVF index is not trained yet: call train() with a sample of the gallery "
                "or build it with faceledger.index.factory.rebuild()"
            )
        if self._full is not None:
            self._full.add(ids_, vecs)
        self._index.add_with_ids(vecs, ids_)
        self._ids.insert(ids_)

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = self._check_ids(ids)
        gone = self._ids.delete(ids_)
        if gone.size:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(gone)))
            if removed != gone.size:
                raise IntegrityError(f"IVF removed {removed} codes for {gone.size} ids")
            if self._full is not None:
                self._full.remove(gone)
        return int(gone.size)

    # -- queries ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> IdArray:
        return self._ids.sorted()

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        return self._ids.contains(self._check_ids(ids))

    def _fetch(self, ids: IdArray) -> VectorArray:
        if self._full is not None:
            return self._full.vectors(ids)
        assert self._source is not None
        return fetch_checked(self._source, ids, self.dimension)

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        if len(self) == 0 or q.shape[0] == 0:
            return SearchHits.empty(q.shape[0], k)
        c = shortlist_size(k, self.shortlist, len(self))
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        _, cand = self._index.search(q, c, params=params)
        return rerank(q, cand.astype(np.int64), self._fetch, k)

    def set_nprobe(self, nprobe: int) -> None:
        """Change the cells scanned per query (recall/latency trade-off) without a rebuild."""
        if nprobe < 1:
            raise InvalidArgument("nprobe must be positive")
        self.nprobe = int(nprobe)
        self._index.nprobe = self.nprobe

    # -- description and persistence --------------------------------------------------------
    @property
    def code_bytes(self) -> int:
        return int(self._index.code_size)

    def memory_bytes(self) -> int:
        lists = len(self) * (self.code_bytes + 8)
        centroids = self.nlist * self.dimension * 4
        extra = 0
        if self.encoding in _PQ:
            extra = self.pq_m * (2**self.pq_bits) * (self.dimension // self.pq_m) * 4
        full = self._full.memory_bytes() if self._full is not None else 0
        return int(lists + centroids + extra + self._ids.nbytes + full)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "nlist": self.nlist,
            "encoding": self.encoding,
            "nprobe": self.nprobe,
            "shortlist": self.shortlist,
            "external_rerank": self._source is not None,
        }
        if self.encoding == "pq":
            p.update(pq_m=self.pq_m, pq_bits=self.pq_bits)
        elif self.encoding == "pq4fs":
            p.update(pq_m=self.pq_m)
        return p

    def save(self, path: str | Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {
            "ids": self._ids.sorted(),
            "faiss": faiss.serialize_index(self._index),
        }
        if self._full is not None:
            arrays["full_ids"] = self._full.ids()
            arrays["full_vectors"] = self._full.vectors(self._full.ids())
        write_index_file(path, self.describe(), arrays)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        """``rerank_source=`` must be given again for an index saved with one."""
        meta, arrays = read_index_file(path, cls.kind)
        params = dict(meta["params"])
        external = bool(params.pop("external_rerank", False))
        source = cast(RerankSource | None, options.get("rerank_source"))
        if external and source is None:
            raise InvalidArgument(f"{path} was saved with an external rerank source: pass one")
        index = cls(int(meta["dimension"]), str(meta["model_id"]), rerank_source=source, **params)
        try:
            fx = faiss.deserialize_index(np.ascontiguousarray(require(arrays, "faiss", path)))
        except RuntimeError as exc:
            raise IntegrityError(f"index file {path}: faiss data is damaged: {exc}") from None
        ids = require(arrays, "ids", path).astype(np.int64)
        if fx.ntotal != ids.size or fx.d != index.dimension:
            raise IntegrityError(f"index file {path}: faiss data and ids do not match")
        fx.nprobe = index.nprobe
        index._index = fx
        index._ids = IdSet(ids)
        if index._full is not None:
            if "full_vectors" in arrays:
                index._full.add(require(arrays, "full_ids", path), arrays["full_vectors"])
            elif ids.size:
                raise InvalidArgument(
                    f"{path} holds no full templates (saved with a rerank source): pass one"
                )
        return index
