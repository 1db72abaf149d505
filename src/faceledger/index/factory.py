"""Choosing, building, loading and rebuilding indexes.

``choose_index`` turns a gallery's expected size, a recall target, an optional memory budget
and whether the optional ScaNN wheel is installed into an :class:`IndexChoice` (kind +
parameters, recorded in the gallery through ``describe()``). ``rebuild`` builds a complete
new index from the store's templates; it holds no lock and touches no shared state, so the
gallery layer runs it off the request path (a worker thread: faiss releases the GIL) and
swaps the result in, replaying the adds and removes made meanwhile. ``needs_rebuild`` says
when the current index no longer fits. The thresholds come from
``benchmarks/search_scale.py`` (see its README).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument
from faceledger.index._persist import peek_kind
from faceledger.index.base import RerankSource, VectorIndex, as_ids, as_vectors
from faceledger.index.exact import ExactIndex
from faceledger.index.faiss_hnsw import FaissHNSWIndex
from faceledger.index.faiss_index import FaissFlatIndex
from faceledger.index.faiss_ivf import FaissIVFIndex
from faceledger.index.scann_index import MIN_TRAIN_PER_LEAF, ScannIndex
from faceledger.index.scann_index import TRAIN_SAMPLE as SCANN_TRAIN_SAMPLE
from faceledger.index.scann_index import available as scann_available

FLAT_MAX = 50_000
"""Up to this size exhaustive search costs a few ms of CPU per query (100k: ~5 ms measured)
and needs no training or graph; above it HNSW answers ~5x faster at recall@10 0.99."""

FAST_SCAN_MIN = 400_000
"""From here IVF with 4-bit fast-scan PQ answers faster than HNSW-SQ8 at recall@10 0.99 and
builds 7-15x faster (measured side by side, benchmarks/README_search_scale.md: 400k 1.46 vs
1.73 ms, 1M 2.5 vs 6.3 ms); at 100k HNSW is ahead (0.82 vs 1.28 ms)."""

FAST_SCAN_BYTES = 64
"""In-memory budget (B/template) from which IVF fast-scan PQ64 fits: 32 B codes + 8 B id +
list padding measured 49-51 B/template."""

SCANN_MIN = FAST_SCAN_MIN
"""From here, when the optional ScaNN wheel is installed, ScaNN (SOAR tree, anisotropic 4-bit
codes) answers faster than faiss at recall@10 0.99: measured 0.97-1.26 ms at 1M over three
runs, against 2.3-3.0 ms for IVF fast-scan in the same runs (benchmarks/README_search_scale.md)."""

SCANN_BYTES = 1300
"""In-memory B/template of a ScaNN index: its own float copy (512), the exact re-rank copy
(512), two 64-byte code tables and two leaf tokens (136), ids."""

IVF_TRAIN_SAMPLE = 64
"""Training vectors per IVF cell: above faiss' 39-per-cell floor, k-means stays ~30 s at 1M."""

HNSW_TRAIN_SAMPLE = 100_000
"""Templates sampled to learn SQ8 value ranges for an HNSW graph."""

_FILE_BACKENDS: dict[str, type[VectorIndex]] = {
    ExactIndex.kind: ExactIndex,
    FaissFlatIndex.kind: FaissFlatIndex,
    FaissHNSWIndex.kind: FaissHNSWIndex,
    FaissIVFIndex.kind: FaissIVFIndex,
    ScannIndex.kind: ScannIndex,
}

KINDS = (*_FILE_BACKENDS, "milvus")


@dataclass(frozen=True)
class IndexChoice:
    """An index kind with its parameters, and why it was chosen."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def ivf_nlist(size: int) -> int:
    """Cells for an IVF over ``size`` templates."""
    # ~2·sqrt(n) cells, a power of two, at least 64 templates per cell
    target = 2 * math.sqrt(max(size, 1))
    nlist = 2 ** max(4, round(math.log2(target)))
    while nlist > 16 and size / nlist < 64:
        nlist //= 2
    return int(nlist)


def choose_index(
    expected_size: int,
    recall_target: float = 0.99,
    *,
    max_bytes_per_template: int | None = None,
) -> IndexChoice:
    """Pick flat, HNSW or IVF for a gallery expected to hold ``expected_size`` templates.

    ``recall_target`` is the wanted recall@10 against exact search; ``max_bytes_per_template``
    the in-memory budget of the index (full templates then stay in the store and are read
    back only to re-rank a shortlist).
    """
    if expected_size < 0:
        raise InvalidArgument("expected_size must be non-negative")
    if not 0.0 < recall_target <= 1.0:
        raise InvalidArgument("recall_target must be in (0, 1]")
    if max_bytes_per_template is not None and max_bytes_per_template < 24:
        raise InvalidArgument("no index stores a template in fewer than 24 bytes")
    if recall_target >= 1.0 or expected_size <= FLAT_MAX:
        return IndexChoice(
            "faiss-flat",
            {"shortlist": 32},
            "exhaustive search: exact, and fast enough at this size"
            if recall_target < 1.0
            else "recall 1.0 asked: only exhaustive search guarantees it",
        )
    nlist = ivf_nlist(expected_size)
    high = recall_target > 0.95
    fast_scan = IndexChoice(
        "faiss-ivf",
        {
            "nlist": nlist,
            "encoding": "pq4fs",
            "pq_m": 64,
            "nprobe": min(nlist, max(8, round((7.0 if high else 4.0) * math.sqrt(nlist)))),
            "shortlist": 400,
        },
        "IVF with 4-bit fast-scan PQ64 codes (32 B) and an exact re-rank of 400 candidates: "
        f"at this size faster than HNSW at recall@10 >= {recall_target}, and built in a "
        "fraction of its time",
    )
    budget_ok = max_bytes_per_template is None or max_bytes_per_template >= SCANN_BYTES
    if expected_size >= SCANN_MIN and budget_ok and scann_available():
        leaves = scann_leaves(expected_size)
        share = scann_share(expected_size) * (1.0 if high else 2.0 / 3.0)
        return IndexChoice(
            "scann",
            {
                "leaves": leaves,
                "leaves_to_search": max(8, round(share * leaves)),
                "reorder": 200,
                "shortlist": 32,
            },
            "ScaNN tree with SOAR spilling and 4-bit anisotropic codes, re-scored on 200 "
            f"candidates and re-ranked exactly: the fastest measured at recall@10 >= "
            f"{recall_target} at this size",
        )
    if max_bytes_per_template is not None and max_bytes_per_template < 600:
        if max_bytes_per_template >= FAST_SCAN_BYTES:
            return fast_scan
        # PQ codes: pq_m bytes + 8-byte id per template. With the store re-rank PQ32 reached
        # the recall of PQ64 at 100k and 1M, faster; the probes, not the codes, limit recall.
        budget = max_bytes_per_template - 10
        pq_m = 32 if budget >= 32 else 16 if budget >= 16 else 8
        # measured: recall@10 0.99 needs ~5.7·sqrt(nlist) cells (128/512 at 100k, 256/2048 at
        # 1M) and a 400-candidate re-rank; 0.95 about 70 % of those cells
        nprobe = max(8, round((5.66 if high else 4.0) * math.sqrt(nlist)))
        return IndexChoice(
            "faiss-ivf",
            {
                "nlist": nlist,
                "encoding": "pq",
                "pq_m": pq_m,
                "pq_bits": 8,
                "nprobe": min(nlist, nprobe),
                "shortlist": 400 if high else 200,
            },
            f"memory budget {max_bytes_per_template} B/template: IVF-PQ{pq_m} codes in memory, "
            "shortlist re-ranked from the store",
        )
    if expected_size >= FAST_SCAN_MIN:
        return fast_scan
    return IndexChoice(
        "faiss-hnsw",
        {
            "m": 32,
            "ef_construction": 40,
            "ef_search": hnsw_ef(expected_size, recall_target),
            "shortlist": 48,
            "storage": "sq8",
        },
        f"HNSW over SQ8 codes for recall@10 >= {recall_target} at this size",
    )


def scann_leaves(size: int) -> int:
    """ScaNN tree leaves for ``size`` templates: ~2·sqrt(n) (2000 at 1M, as measured), with at
    least MIN_TRAIN_PER_LEAF training points per leaf."""
    leaves = int(round(2 * math.sqrt(max(size, 1)) / 100) * 100)
    return max(16, min(leaves, max(size, 1) // MIN_TRAIN_PER_LEAF))


def scann_share(size: int) -> float:
    """Share of ScaNN's leaves searched for recall@10 0.99: measured 9 % at 400k (1300 leaves,
    0.993; 7.5 % gave 0.989) and 7.5 % at 1M (2000 leaves, 0.993), i.e. ~size^-0.2."""
    ratio: float = max(size, SCANN_MIN) / 400_000
    return max(0.06, 0.09 / math.pow(ratio, 0.2))


def hnsw_ef(size: int, recall_target: float) -> int:
    """efSearch for a recall@10 target: measured 128 for 0.99 at 100k and 512 at 1M (M=32,
    efConstruction 40), i.e. growing like size^0.6; half of that for 0.95."""
    ef = 128 * (max(size, 100_000) / 100_000) ** 0.6
    if recall_target <= 0.95:
        ef /= 2
    return int(min(1024, max(64, 2 ** round(math.log2(ef)))))


def make_index(
    kind: str,
    dimension: int,
    model_id: str,
    *,
    rerank_source: RerankSource | None = None,
    **params: Any,
) -> VectorIndex:
    """A new empty index of ``kind`` (``"milvus"`` needs ``client=`` or ``uri=``, ``gallery=``)."""
    if kind == "milvus":
        from faceledger.index.milvus_index import MilvusIndex

        uri = params.pop("uri", None)
        client = params.pop("client", None)
        token = params.pop("token", None)
        if client is not None:
            return MilvusIndex(client, model_id=model_id, dimension=dimension, uri=uri, **params)
        if uri is None:
            raise InvalidArgument("a milvus index needs client= or uri=")
        return MilvusIndex.connect(
            uri, token=token, model_id=model_id, dimension=dimension, **params
        )
    if kind not in _FILE_BACKENDS:
        raise InvalidArgument(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    if rerank_source is not None:
        if kind not in (FaissIVFIndex.kind, FaissHNSWIndex.kind):
            raise InvalidArgument(f"{kind} keeps its own full templates: no rerank_source")
        params["rerank_source"] = rerank_source
    try:
        return _FILE_BACKENDS[kind](dimension, model_id, **params)
    except TypeError as exc:
        raise InvalidArgument(f"bad parameters for a {kind} index: {exc}") from None


def from_description(description: dict[str, Any], **runtime: Any) -> VectorIndex:
    """A new empty index matching a ``describe()`` dict (``runtime``: rerank_source, client...)."""
    params = dict(description.get("params", {}))
    params.pop("external_rerank", None)
    for derived in ("collection", "partition"):
        params.pop(derived, None)
    params.update(runtime)
    return make_index(
        str(description["kind"]),
        int(description["dimension"]),
        str(description["model_id"]),
        **params,
    )


def load_index(path: str | Path, **options: Any) -> VectorIndex:
    """Load any file-backed index saved with ``save()`` (options: ``rerank_source=``)."""
    kind = peek_kind(path)
    if kind not in _FILE_BACKENDS:
        raise InvalidArgument(f"{path}: no file loader for index kind {kind!r}")
    return _FILE_BACKENDS[kind].load(path, **options)


def rebuild(
    ids: npt.ArrayLike,
    vectors: npt.ArrayLike,
    choice: IndexChoice,
    *,
    dimension: int,
    model_id: str,
    rerank_source: RerankSource | None = None,
    chunk: int = 100_000,
    seed: int = 1234,
    progress: Callable[[int, int], None] | None = None,
) -> VectorIndex:
    """A new index of ``choice`` holding exactly ``ids``/``vectors`` (trained if it needs it).

    Pure: reads its arguments, returns a new object. Safe to run in a background thread while
    the old index keeps serving; ``progress(done, total)`` is called after each chunk.
    """
    ids_ = as_ids(ids)
    vecs = as_vectors(vectors, dimension, what="vectors")
    if vecs.shape[0] != ids_.size:
        raise InvalidArgument(f"{ids_.size} ids but {vecs.shape[0]} vectors")
    index = make_index(
        choice.kind, dimension, model_id, rerank_source=rerank_source, **choice.params
    )
    rng = np.random.default_rng(seed)
    if isinstance(index, FaissIVFIndex):
        n_train = min(ids_.size, max(index.min_train_size, IVF_TRAIN_SAMPLE * index.nlist))
        sample = np.sort(rng.choice(ids_.size, size=n_train, replace=False))
        index.train(vecs[sample], seed=seed)
    elif isinstance(index, ScannIndex) and ids_.size:
        # one native pass: ScaNN's inserts hold the GIL (~60 µs each), its constructor does not
        index.build(ids_, vecs, n_train=max(index.min_train_size, SCANN_TRAIN_SAMPLE))
        if progress is not None:
            progress(int(ids_.size), int(ids_.size))
        return index
    elif isinstance(index, FaissHNSWIndex) and not index.is_trained and ids_.size:
        sample = np.sort(
            rng.choice(ids_.size, size=min(ids_.size, HNSW_TRAIN_SAMPLE), replace=False)
        )
        index.train(vecs[sample])
    for a in range(0, ids_.size, chunk):
        b = min(ids_.size, a + chunk)
        index.add(ids_[a:b], vecs[a:b])
        if progress is not None:
            progress(b, int(ids_.size))
    return index


def needs_rebuild(
    index: VectorIndex,
    recall_target: float = 0.99,
    *,
    max_bytes_per_template: int | None = None,
) -> IndexChoice | None:
    """The choice to rebuild to, or None while the current index still fits its gallery.

    Rebuild when the gallery has grown past what its kind was chosen for (or shrunk far
    below it), when an IVF's cells hold far more templates than they were trained for, or
    when removals left more than a fifth of an HNSW graph as tombstones.
    """
    n = len(index)
    want = choose_index(n, recall_target, max_bytes_per_template=max_bytes_per_template)
    desc = index.describe()
    if index.kind in ("exact", "milvus"):
        return None  # chosen explicitly, never switched automatically
    if index.kind == "scann":
        leaves = int(desc["params"]["leaves"])
        # shrunk, or grown to want twice the leaves (about 4x the size its tree was made for)
        if n < FLAT_MAX // 4 or scann_leaves(n) >= 2 * leaves:
            return want
        return None
    if index.kind == "faiss-flat":
        return want if n > 2 * FLAT_MAX else None
    if index.kind == "faiss-hnsw":
        dead = getattr(index, "dead_fraction", 0.0)
        if dead > 0.2 or n < FLAT_MAX // 4 or want.kind in ("faiss-ivf", "scann"):
            return want
        return None
    if index.kind == "faiss-ivf":
        nlist = int(desc["params"]["nlist"])
        if n < FLAT_MAX // 4 or n > 16 * IVF_TRAIN_SAMPLE * nlist or want.kind == "scann":
            return want
        return None
    return None


def retune(index: VectorIndex, recall_target: float = 0.99) -> bool:
    """Raise an HNSW graph's efSearch to what its current size needs for ``recall_target``
    (a graph grows in place, and a larger graph needs a wider search); True if changed."""
    if isinstance(index, FaissHNSWIndex):
        ef = hnsw_ef(len(index), recall_target)
        if index.ef_search < ef:
            index.ef_search = ef
            return True
    return False
