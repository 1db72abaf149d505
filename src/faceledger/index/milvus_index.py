"""Milvus backend via pymilvus: milvus-lite (a local ``*.db`` file) or a Milvus server/cluster URI.

Layout: one collection per model (``fl_<model>_<dim>_<hash>``), one partition per gallery.
The primary key is ``"<partition>:<template id>"`` so ids may repeat across galleries without
ever colliding in the collection; the template id is also kept as an INT64 field. Milvus
returns a shortlist with the full vectors, which :func:`rerank` scores exactly, so results
match the exact oracle. Reads use consistency level Strong by default: a delete is visible to
the very next search (needed so a deleted subject can never be returned).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from faceledger.errors import (
    IntegrityError,
    InvalidArgument,
    ModelMismatch,
    NotFound,
    StoreError,
)
from faceledger.index._persist import FORMAT, VERSION, atomic_write_bytes
from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    VectorIndex,
    check_new_ids,
    rerank,
    shortlist_size,
)

_MAX_TOPK = 16384
"""Milvus refuses a search limit above this."""

_BATCH = 2000
"""Rows per insert / get request (keeps each gRPC message well under its size limit)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds one request to Milvus may take, pymilvus' retries included. Without a bound,
pymilvus retries an unreachable server 75 times (minutes): a request of the service would
hang instead of failing with ``StoreError`` (HTTP 503)."""

_PK = "pk"
_TID = "tid"
_VEC = "vector"


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", text)[:limit]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def collection_name(model_id: str, dimension: int) -> str:
    """The collection that holds every gallery of one model."""
    return f"fl_{_slug(model_id, 40)}_{dimension}_{_digest(model_id)}"


def partition_name(gallery: str) -> str:
    """A valid Milvus partition name for a gallery name (readable prefix + hash)."""
    if not gallery:
        raise InvalidArgument("gallery name must be non-empty")
    return f"g_{_slug(gallery, 48)}_{_digest(gallery)}"


def is_lite_uri(uri: str) -> bool:
    """True for a milvus-lite local file URI, False for a server address."""
    return "://" not in uri


def _milvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:  # pragma: no cover - pymilvus is a declared dependency
        raise StoreError(f"the Milvus backend needs pymilvus: {exc}") from None
    return pymilvus


def _client_errors() -> tuple[type[BaseException], ...]:
    """What a pymilvus client raises when Milvus fails or cannot be reached: its own
    ``MilvusException``, and gRPC errors it passes through unwrapped (a deadline exceeded,
    a connection lost mid-stream, a channel that never became ready)."""
    import grpc

    return (_milvus().exceptions.MilvusException, grpc.RpcError, grpc.FutureTimeoutError)


class MilvusIndex(VectorIndex):
    """One gallery (a partition) of one model's collection in Milvus."""

    kind = "milvus"

    def __init__(  # noqa: PLR0913
        self,
        client: Any,
        *,
        model_id: str,
        dimension: int,
        gallery: str,
        uri: str | None = None,
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        shortlist: int = 64,
        consistency_level: str = "Strong",
        flush_on_add: bool = False,
        owns_client: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        """Use ``client`` (a ``pymilvus.MilvusClient``); creates collection/partition if absent.

        ``flush_on_add`` seals new rows after each ``add``: milvus-lite searches unsealed rows
        ~20x slower, while a server searches them fine and rate-limits flushes (leave it off).
        ``timeout``: seconds each request may take, retries included, before it fails with
        ``StoreError`` (None: pymilvus' own retry policy, minutes for a server that is down);
        loading the collection here is one request: raise it for a collection that loads
        more slowly.
        """
        super().__init__(dimension, model_id)
        if shortlist < 1:
            raise InvalidArgument("shortlist must be at least 1")
        self._client = client
        self._owns_client = owns_client
        self.uri = uri
        self.gallery = gallery
        self.collection = collection_name(model_id, self.dimension)
        self.partition = partition_name(gallery)
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self.shortlist = int(shortlist)
        self.consistency_level = consistency_level
        self.flush_on_add = flush_on_add
        if timeout is not None and not timeout > 0:
            raise InvalidArgument("timeout must be positive (or None)")
        self.timeout = None if timeout is None else float(timeout)
        self._call(self._ensure_layout)

    @classmethod
    def connect(cls, uri: str, *, token: str | None = None, **kwargs: Any) -> MilvusIndex:
        """Open a client on ``uri`` (``/path/file.db`` = milvus-lite; ``http://host:19530``)."""
        pymilvus = _milvus()
        kwargs.setdefault("flush_on_add", is_lite_uri(uri))
        try:
            client = pymilvus.MilvusClient(
                uri=uri, token=token or "", timeout=kwargs.get("timeout", DEFAULT_TIMEOUT)
            )
        except Exception as exc:  # pymilvus raises many types for an unreachable server
            raise StoreError(f"cannot connect to Milvus at {uri}: {exc}") from None
        return cls(client, uri=uri, owns_client=True, **kwargs)

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, translating Milvus failures into ``StoreError``."""
        try:
            return fn(*args, **kwargs)
        except _client_errors() as exc:
            raise StoreError(f"Milvus {self.collection}/{self.partition}: {exc}") from None

    def _rpc(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One request of the client, bounded by ``timeout``, failures as ``StoreError``."""
        return self._call(getattr(self._client, method), *args, timeout=self.timeout, **kwargs)

    def _ensure_layout(self) -> None:
        c = self._client
        pymilvus = _milvus()
        t = self.timeout
        if not c.has_collection(self.collection, timeout=t):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field(_PK, pymilvus.DataType.VARCHAR, is_primary=True, max_length=96)
            schema.add_field(_TID, pymilvus.DataType.INT64)
            schema.add_field(_VEC, pymilvus.DataType.FLOAT_VECTOR, dim=self.dimension)
            ip = c.prepare_index_params()
            ip.add_index(
                field_name=_VEC,
                index_type=self.index_type,
                metric_type="IP",
                params=self.index_params,
            )
            c.create_collection(
                self.collection,
                schema=schema,
                index_params=ip,
                consistency_level=self.consistency_level,
                timeout=t,
            )
        else:
            desc = c.describe_collection(self.collection, timeout=t)
            dims = [int(f["params"]["dim"]) for f in desc["fields"] if f["name"] == _VEC]
            if dims != [self.dimension]:
                raise ModelMismatch(
                    f"Milvus collection {self.collection} holds {dims}-d vectors, "
                    f"not {self.dimension}-d"
                )
        if not c.has_partition(self.collection, self.partition, timeout=t):
            c.create_partition(self.collection, self.partition, timeout=t)
        c.load_collection(self.collection, timeout=t)

    def _pks(self, ids: IdArray) -> list[str]:
        return [f"{self.partition}:{int(i)}" for i in ids]

    def _present(self, ids: IdArray) -> npt.NDArray[np.bool_]:
        found: set[int] = set()
        for b in range(0, ids.size, _BATCH):
            rows = self._rpc(
                "get",
                self.collection,
                ids=self._pks(ids[b : b + _BATCH]),
                output_fields=[_TID],
                partition_names=[self.partition],
                consistency_level=self.consistency_level,
            )
            found.update(int(r[_TID]) for r in rows)
        return np.array([int(i) in found for i in ids], dtype=np.bool_)

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert in batches; a server failure mid-way can leave earlier batches stored (the
        gallery layer's store-to-index sync repairs that, the store being the truth)."""
        ids_ = self._check_ids(ids)
        vecs = self._check_vectors(vectors, ids_.size)
        if ids_.size == 0:
            return
        check_new_ids(ids_, self._present(ids_))
        pks = self._pks(ids_)
        for b in range(0, ids_.size, _BATCH):
            rows = [
                {_PK: pks[i], _TID: int(ids_[i]), _VEC: vecs[i]}
                for i in range(b, min(ids_.size, b + _BATCH))
            ]
            self._rpc("insert", self.collection, rows, partition_name=self.partition)
        if self.flush_on_add:
            self.flush()

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Insert, or replace rows with the same ids: several processes sharing the index may
        write the same template (each reconciling with the store) without duplicating it."""
        ids_ = self._check_ids(ids)
        vecs = self._check_vectors(vectors, ids_.size)
        if np.unique(ids_).size != ids_.size:
            raise InvalidArgument("duplicate ids in one upsert")
        pks = self._pks(ids_)
        for b in range(0, ids_.size, _BATCH):
            rows = [
                {_PK: pks[i], _TID: int(ids_[i]), _VEC: vecs[i]}
                for i in range(b, min(ids_.size, b + _BATCH))
            ]
            self._rpc("upsert", self.collection, rows, partition_name=self.partition)
        if self.flush_on_add and ids_.size:
            self.flush()

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = np.unique(self._check_ids(ids))
        if ids_.size == 0:
            return 0
        gone = ids_[self._present(ids_)]
        for b in range(0, gone.size, _BATCH):
            self._rpc(
                "delete",
                self.collection,
                ids=self._pks(gone[b : b + _BATCH]),
                partition_name=self.partition,
            )
        return int(gone.size)

    def drop(self) -> None:
        """Delete this gallery's partition and everything in it."""
        if self._rpc("has_partition", self.collection, self.partition):
            # A server refuses to drop a loaded partition; milvus-lite cannot release one
            # (it answers UNIMPLEMENTED as a raw gRPC error) but drops it loaded.
            with contextlib.suppress(Exception):
                self._rpc("release_partitions", self.collection, [self.partition])
            self._rpc("drop_partition", self.collection, self.partition)

    def flush(self) -> None:
        """Seal rows written so far (milvus-lite then searches them fast; servers need not)."""
        self._rpc("flush", self.collection)

    def compact(self, wait: float | None = None) -> None:
        """Seal what was written (a flush), then ask Milvus to rewrite segments without their
        deleted rows: a delete is only a tombstone until then, so run this after erasure
        requests for the template bytes to leave the segments (docs/milvus.md, Erasure).

        ``wait``: seconds to wait for the compaction to complete (``StoreError`` if it has
        not by then); None returns once Milvus has accepted it.
        """
        self.flush()
        job = self._rpc("compact", self.collection)
        if wait is None:
            return
        deadline = time.monotonic() + wait
        while (state := self._rpc("get_compaction_state", job)) != "Completed":
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"Milvus compaction {job} of {self.collection} still {state} after {wait} s"
                )
            time.sleep(0.2)

    def stored_rows(self) -> int:
        """The rows Milvus keeps in this gallery's partition (its ``num_entities``): unlike
        ``len()``, deleted rows count here until a compaction has removed them."""
        return int(self._rpc("get_partition_stats", self.collection, self.partition)["row_count"])

    # -- queries ----------------------------------------------------------------------------
    def __len__(self) -> int:
        # A non-empty filter: milvus-lite 3.2 ignores partition_names in count(*) without one.
        rows = self._rpc(
            "query",
            self.collection,
            filter=f"{_TID} >= 0",
            output_fields=["count(*)"],
            partition_names=[self.partition],
            consistency_level=self.consistency_level,
        )
        return int(rows[0]["count(*)"])

    def _iter_ids(self) -> Iterator[int]:
        it = self._rpc(
            "query_iterator",
            self.collection,
            batch_size=5000,
            filter="",
            output_fields=[_TID],
            partition_names=[self.partition],
            consistency_level=self.consistency_level,
        )
        try:
            while True:
                batch = self._call(it.next)
                if not batch:
                    return
                for r in batch:
                    yield int(r[_TID])
        finally:
            it.close()

    def ids(self) -> IdArray:
        return np.sort(np.fromiter(self._iter_ids(), dtype=np.int64))

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        ids_ = self._check_ids(ids)
        return self._present(ids_) if ids_.size else np.zeros(0, dtype=np.bool_)

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        if q.shape[0] == 0:
            return SearchHits.empty(0, k)
        if k > _MAX_TOPK:
            raise InvalidArgument(f"Milvus returns at most {_MAX_TOPK} results per query")
        limit = shortlist_size(k, self.shortlist, _MAX_TOPK)
        result = self._rpc(
            "search",
            self.collection,
            data=list(q),
            limit=limit,
            output_fields=[_TID, _VEC],
            partition_names=[self.partition],
            search_params={"metric_type": "IP", "params": self.search_params},
            consistency_level=self.consistency_level,
        )
        cand = np.full((q.shape[0], limit), -1, dtype=np.int64)
        vectors: dict[int, Any] = {}
        for i, hits in enumerate(result):
            for j, hit in enumerate(hits):
                entity = hit["entity"]
                tid = int(entity[_TID])
                cand[i, j] = tid
                vectors[tid] = entity[_VEC]

        def fetch(ids: IdArray) -> VectorArray:
            return np.asarray([vectors[int(i)] for i in ids], dtype=np.float32)

        return rerank(q, cand, fetch, k)

    # -- description and persistence --------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "gallery": self.gallery,
            "collection": self.collection,
            "partition": self.partition,
            "index_type": self.index_type,
            "index_params": self.index_params,
            "search_params": self.search_params,
            "shortlist": self.shortlist,
            "consistency_level": self.consistency_level,
            "flush_on_add": self.flush_on_add,
            "timeout": self.timeout,
        }

    def memory_bytes(self) -> int:
        """Raw bytes of this gallery's rows as Milvus holds them (vector + id + key)."""
        return len(self) * (self.dimension * 4 + 8 + len(self.partition) + 12)

    def save(self, path: str | Path) -> None:
        """Flush to durable storage and write a small manifest (no secrets) to reopen it."""
        self.flush()
        meta = {"format": FORMAT, "version": VERSION, **self.describe()}
        data = json.dumps(meta, sort_keys=True, indent=2).encode()
        atomic_write_bytes(path, lambda f: f.write(data))

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        """Reopen from a manifest; pass ``client=`` or let it connect to the recorded ``uri``
        (``token=`` for a secured server; ``uri=`` overrides the recorded one)."""
        try:
            meta = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise NotFound(f"no index manifest at {path}") from None
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"index manifest {path} is damaged: {exc}") from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != FORMAT
            or meta.get("kind") != cls.kind
        ):
            raise IntegrityError(f"{path} is not a Milvus index manifest")
        p = dict(meta["params"])
        for derived in ("collection", "partition"):
            p.pop(derived, None)
        uri = options.get("uri") or p.pop("uri", None)
        p.pop("uri", None)
        kwargs: dict[str, Any] = {
            "model_id": str(meta["model_id"]),
            "dimension": int(meta["dimension"]),
            **p,
        }
        client = options.get("client")
        if client is not None:
            return cls(client, uri=uri, **kwargs)
        if not uri:
            raise InvalidArgument(f"{path} records no Milvus URI: pass client= or uri=")
        opened = cls.connect(str(uri), token=options.get("token"), **kwargs)
        assert isinstance(opened, cls)
        return opened

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
