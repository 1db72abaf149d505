"""ScaNN backend: a k-means tree with SOAR spilling and anisotropic 4-bit codes, exact re-rank.

Google's ScaNN (``pip install faceledger[scale]``, Linux x86-64 wheels) is the fastest
library measured here at recall@10 0.99: about 1 ms per query on one core for a 1M-template
gallery, 2-2.4x faster than faiss IVF fast-scan (benchmarks/README_search_scale.md). Each
template lives in two tree leaves (SOAR: its own and a second one chosen orthogonal to the
first residual), is scored there with anisotropic product-quantised codes (64 half-byte
codes), and ScaNN re-scores a few hundred candidates on its float copy; this class then
re-ranks the final shortlist exactly (:func:`rerank`).

ScaNN 1.4.2 crashes (segfault) when a SOAR searcher deletes or updates a point, so this
class never asks it to. Removal rewrites the searcher without the removed rows instead:
serialise, drop the rows from every per-point array (float copy, both code tables, leaf
tokens), load. That takes seconds at 1M templates and is what makes removal verifiable:
nothing of a removed template stays in memory or in saved files. ScaNN cannot hold zero
points once trained, so row 0 of every searcher is an *anchor*: the normalised mean of the
training sample (no one's template), never returned.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from faceledger.errors import IntegrityError, InvalidArgument
from faceledger.index._persist import read_index_file, require, write_index_file
from faceledger.index._slots import SlotMembership, SlotTable, with_room
from faceledger.index.base import (
    IdArray,
    SearchHits,
    VectorArray,
    VectorIndex,
    as_vectors,
    rank_one,
    rerank,
    shortlist_size,
)

MIN_TRAIN_PER_LEAF = 50
"""ScaNN's tree refuses leaves smaller than this (its ``min_partition_size``)."""

TRAIN_SAMPLE = 250_000
"""Templates sampled to train the tree and the codes (60 s of k-means for 2000 leaves)."""

_TOKENS = "datapoint_to_token"  # two int32 leaf ids per point: its own leaf and its SOAR spill
_ASSETS = "scann_assets.pbtxt"
_ARRAY, _FILE = "scann_array_", "scann_file_"  # name prefixes in an index file
_PARALLEL_FROM = 16  # query rows from which ScaNN's own thread pool answers a batch


@functools.cache
def available() -> bool:
    """Whether the ScaNN wheel is installed (it is optional: ``faceledger[scale]``)."""
    try:
        _scann()
    except InvalidArgument:
        return False
    return True


def _scann() -> Any:
    """The ScaNN extension module, imported on first use."""
    try:
        # the wrapper module puts the extension (a top-level ``scann_pybind``) on sys.path
        importlib.import_module("scann.scann_ops.py.scann_ops_pybind")
        return importlib.import_module("scann_pybind")
    except ImportError as exc:
        raise InvalidArgument(
            f"the scann index needs the ScaNN wheel: pip install 'faceledger[scale]' ({exc})"
        ) from None


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="faceledger-scann-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Artifacts:
    """A searcher as data: its per-point arrays (row 0 = anchor) and its model files."""

    def __init__(self, arrays: dict[str, npt.NDArray[Any]], files: dict[str, bytes]) -> None:
        self.arrays = arrays
        self.files = files
        rows = {name: a.shape[0] for name, a in arrays.items() if name != _TOKENS}
        n = arrays["dataset"].shape[0] if "dataset" in arrays else -1
        if _ASSETS not in files or n < 1 or any(r != n for r in rows.values()):
            raise IntegrityError("ScaNN artifacts are incomplete or their arrays disagree")
        if arrays.get(_TOKENS, np.empty(0)).shape != (2 * n,):
            raise IntegrityError("ScaNN leaf tokens do not match its points")

    @property
    def rows(self) -> int:
        return int(self.arrays["dataset"].shape[0])

    @classmethod
    def dump(cls, searcher: Any) -> _Artifacts:
        with _scratch() as folder:
            searcher.serialize(str(folder), True)
            arrays: dict[str, npt.NDArray[Any]] = {}
            files: dict[str, bytes] = {}
            for p in folder.iterdir():
                if p.suffix == ".npy":
                    arrays[p.stem] = np.load(p, allow_pickle=False)
                else:
                    files[p.name] = p.read_bytes()
        return cls(arrays, files)

    def keep(self, rows: IdArray) -> _Artifacts:
        """The same searcher holding only ``rows`` (in that order)."""
        arrays = {}
        for name, a in self.arrays.items():
            if name == _TOKENS:
                arrays[name] = np.ascontiguousarray(a.reshape(-1, 2)[rows].reshape(-1))
            else:
                arrays[name] = np.ascontiguousarray(a[rows])
        return _Artifacts(arrays, self.files)

    def load(self) -> Any:
        scann = _scann()
        with _scratch() as folder:
            for name, a in self.arrays.items():
                np.save(folder / f"{name}.npy", a, allow_pickle=False)
            for name, blob in self.files.items():
                (folder / name).write_bytes(blob)
            try:
                return scann.ScannNumpy(str(folder), self.files[_ASSETS].decode())
            except (RuntimeError, ValueError) as exc:
                raise IntegrityError(f"ScaNN could not load its searcher: {exc}") from None

    def to_file_arrays(self) -> dict[str, npt.NDArray[Any]]:
        out = {_ARRAY + name: a for name, a in self.arrays.items()}
        for name, blob in self.files.items():
            out[_FILE + name] = np.frombuffer(blob, dtype=np.uint8)
        return out

    @classmethod
    def from_file_arrays(cls, arrays: dict[str, npt.NDArray[Any]]) -> _Artifacts | None:
        data = {k.removeprefix(_ARRAY): v for k, v in arrays.items() if k.startswith(_ARRAY)}
        files = {
            k.removeprefix(_FILE): v.tobytes() for k, v in arrays.items() if k.startswith(_FILE)
        }
        if not data and not files:
            return None
        return cls(data, files)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))


def _anchor_only(searcher: Any) -> Any:
    """A copy of ``searcher`` cut down to its anchor row: trained, holding no one."""
    return _Artifacts.dump(searcher).keep(np.zeros(1, dtype=np.int64)).load()


class ScannIndex(SlotMembership, VectorIndex):
    """ScaNN tree over ``leaves`` cells; ``leaves_to_search`` trades latency for recall."""

    kind = "scann"

    def __init__(
        self,
        dimension: int,
        model_id: str,
        *,
        leaves: int = 2000,
        leaves_to_search: int = 150,
        reorder: int = 200,
        shortlist: int = 32,
        soar_lambda: float = 1.5,
        aq_threshold: float = 0.2,
    ) -> None:
        super().__init__(dimension, model_id)
        if leaves < 2 or not 1 <= leaves_to_search <= leaves:
            raise InvalidArgument("ScaNN needs leaves >= 2 and 1 <= leaves_to_search <= leaves")
        if reorder < 1 or shortlist < 1:
            raise InvalidArgument("reorder and shortlist must be at least 1")
        if soar_lambda <= 0 or not 0 < aq_threshold < 1:
            raise InvalidArgument("soar_lambda must be > 0 and aq_threshold in (0, 1)")
        if dimension % 2:
            raise InvalidArgument("ScaNN's 2-dimension code blocks need an even dimension")
        self.leaves = int(leaves)
        self.leaves_to_search = int(leaves_to_search)
        self.reorder = int(reorder)
        self.shortlist = int(shortlist)
        self.soar_lambda = float(soar_lambda)
        self.aq_threshold = float(aq_threshold)
        self._slots = SlotTable()  # ScaNN row = slot + 1 (row 0 is the anchor)
        self._full = np.empty((0, dimension), dtype=np.float32)  # by slot, for the re-rank
        self._searcher: Any = None

    # -- training ---------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        return self._searcher is not None

    @property
    def min_train_size(self) -> int:
        return self.leaves * MIN_TRAIN_PER_LEAF

    def _config(self, n_train: int) -> str:
        from scann.scann_ops.py import scann_ops_pybind

        sample = np.zeros((1, self.dimension), dtype=np.float32)  # the builder only reads d
        builder = scann_ops_pybind.builder(sample, 10, "dot_product")
        builder = builder.tree(
            num_leaves=self.leaves,
            num_leaves_to_search=self.leaves_to_search,
            training_sample_size=n_train,
            spherical=True,
            soar_lambda=self.soar_lambda,
            overretrieve_factor=2.0,
        )
        builder = builder.score_ah(2, anisotropic_quantization_threshold=self.aq_threshold)
        return str(builder.reorder(self.reorder).create_config())

    def _construct(self, vecs: VectorArray, n_train: int) -> Any:
        """A searcher over the anchor (row 0: the normalised mean of ``vecs``) and ``vecs``,
        trained on a sample of ``n_train`` of them and encoded by ScaNN's own constructor
        (which releases the GIL, unlike its inserts)."""
        if vecs.shape[0] < self.min_train_size:
            raise InvalidArgument(
                f"ScaNN with {self.leaves} leaves needs at least {self.min_train_size} "
                f"templates to learn from, got {vecs.shape[0]}"
            )
        mean = vecs.astype(np.float64).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            raise InvalidArgument("the templates average to zero: not a face gallery")
        anchor = (mean / norm).astype(np.float32)[None, :]
        rows = np.concatenate([anchor, vecs])
        return _scann().ScannNumpy(rows, self._config(min(n_train, rows.shape[0])), 0)

    def train(self, vectors: npt.ArrayLike) -> None:
        """Learn the tree and the codebooks from a sample of the gallery's templates.

        The sample's own points are dropped afterwards: only the anchor stays.
        """
        if self._slots.n_slots:
            raise InvalidArgument("train a ScaNN index before adding templates (or rebuild it)")
        vecs = as_vectors(vectors, self.dimension, what="training vectors")
        searcher = self._construct(vecs, vecs.shape[0])
        self._searcher = _anchor_only(searcher)

    def build(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, *, n_train: int) -> None:
        """Fill an empty, untrained index in one pass: train on ``n_train`` sampled templates
        and encode them all natively (a 1M build: minutes, without blocking other threads)."""
        if self._searcher is not None or self._slots.n_slots:
            raise InvalidArgument("build() fills an empty, untrained ScaNN index")
        ids_, vecs = self._check_add(ids, vectors)
        searcher = self._construct(vecs, n_train)
        if int(searcher.size()) != ids_.size + 1:
            raise IntegrityError("ScaNN did not index every template")
        self._slots.append(ids_)
        self._full = vecs.copy()
        self._searcher = searcher

    def trained_copy(self) -> ScannIndex:
        """A new, empty index with the same parameters, tree and codebooks (no re-training)."""
        if self._searcher is None:
            raise InvalidArgument("this ScaNN index is not trained")
        twin = ScannIndex(self.dimension, self.model_id, **self.params())
        twin._searcher = _anchor_only(self._searcher)
        return twin

    def set_threads(self, threads: int) -> None:
        """Threads ScaNN uses to answer a batch of queries (one query always uses one)."""
        if self._searcher is None:
            raise InvalidArgument("this ScaNN index is not trained")
        self._searcher.set_num_threads(int(threads))

    # -- mutation ---------------------------------------------------------------------------
    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        ids_, vecs = self._check_add(ids, vectors)
        if ids_.size == 0:
            return
        if self._searcher is None:  # the first add trains (refused when it is too small)
            self.build(ids_, vecs, n_train=TRAIN_SAMPLE)
            return
        rows_before = int(self._searcher.size())
        if rows_before != self._slots.n_slots + 1:
            raise IntegrityError("the ScaNN searcher and its id table disagree")
        try:
            self._searcher.upsert([None] * ids_.size, vecs, min(ids_.size, 10_000))
            if int(self._searcher.size()) != rows_before + ids_.size:
                raise IntegrityError("ScaNN did not append every template")
        except BaseException:
            # cut off whatever part of the batch ScaNN took; the id table was not touched
            rows = np.arange(rows_before, dtype=np.int64)
            self._searcher = _Artifacts.dump(self._searcher).keep(rows).load()
            raise
        slots = self._slots.append(ids_)
        self._full = with_room(self._full, int(slots[-1]) + 1, self._full.shape[0])
        self._full[slots] = vecs

    def remove(self, ids: npt.ArrayLike) -> int:
        ids_ = self._check_ids(ids)
        dead = np.unique(self._slots.lookup(ids_))
        dead = dead[dead >= 0]
        if dead.size == 0:
            return 0
        keep = np.setdiff1d(self._slots.live_slots(), dead)  # old slot of each new slot
        rows = np.concatenate([[0], keep + 1]).astype(np.int64)
        # the rewritten searcher is complete before anything here changes
        searcher = _Artifacts.dump(self._searcher).keep(rows).load()
        self._full[dead] = 0.0
        self._slots.kill(ids_)
        if not np.array_equal(self._slots.compact(), keep):
            raise IntegrityError("ScaNN id table compaction went wrong")
        self._full = np.ascontiguousarray(self._full[keep])
        self._searcher = searcher
        return int(dead.size)

    # -- queries ----------------------------------------------------------------------------
    def _by_slot(self, slots: IdArray) -> VectorArray:
        out: VectorArray = self._full[slots]
        return out

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        q = self._check_queries(queries, k)
        m = q.shape[0]
        if len(self) == 0 or m == 0:
            return SearchHits.empty(m, k)
        c = shortlist_size(k, self.shortlist, len(self)) + 1  # the anchor may take a place
        pre = max(self.reorder, c)
        if m == 1:  # the latency path: a dozen numpy calls after ScaNN's own
            found = self._searcher.search(q[0], c, pre, self.leaves_to_search)[0]
            slots = found[found > 0] - 1  # ScaNN row = slot + 1; row 0 is the anchor
            # every slot is live (removal compacts)
            return rank_one(q[0], self._slots.labels_of_live(slots), self._by_slot(slots), k)
        if m >= _PARALLEL_FROM:
            rows, _ = self._searcher.search_batched(q, c, pre, self.leaves_to_search, True, 64)
            rows = np.asarray(rows, dtype=np.int64).reshape(m, -1)
        else:
            rows = np.zeros((m, c), dtype=np.int64)  # row 0 (the anchor) pads: never returned
            for i in range(m):
                r = self._searcher.search(q[i], c, pre, self.leaves_to_search)[0]
                rows[i, : len(r)] = r
        slots = rows - 1  # ScaNN row = slot + 1; the anchor and padding become -1
        # every slot is live (removal compacts), so the re-rank reads templates by slot
        return rerank(q, self._slots.labels(slots), self._by_slot, k, rows=slots)

    # -- description and persistence ----------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "leaves": self.leaves,
            "leaves_to_search": self.leaves_to_search,
            "reorder": self.reorder,
            "shortlist": self.shortlist,
            "soar_lambda": self.soar_lambda,
            "aq_threshold": self.aq_threshold,
        }

    def memory_bytes(self) -> int:
        n = self._slots.n_slots + 1
        # ScaNN's float copy, two 64-byte code tables and two leaf tokens per row
        scann = n * (4 * self.dimension + self.dimension + 8) if self._searcher is not None else 0
        return int(scann + self._full[: self._slots.n_slots].nbytes + self._slots.nbytes)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {
            "labels": self._slots.slot_labels(),
            "full": self._full[: self._slots.n_slots],
        }
        if self._searcher is not None:
            arrays.update(_Artifacts.dump(self._searcher).to_file_arrays())
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
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"index file {path}: bad header ({exc})") from None
        labels = require(arrays, "labels", path).astype(np.int64)
        full = require(arrays, "full", path).astype(np.float32)
        if full.shape != (labels.size, index.dimension):
            raise IntegrityError(f"index file {path}: templates and ids do not match")
        index._slots = SlotTable.from_labels(labels)
        if index._slots.n_dead:
            raise IntegrityError(f"index file {path}: a ScaNN index keeps no removed slots")
        index._full = np.ascontiguousarray(full)
        artifacts = _Artifacts.from_file_arrays(arrays)
        if artifacts is None:
            if labels.size:
                raise IntegrityError(f"index file {path}: templates without a ScaNN searcher")
            return index
        if artifacts.rows != labels.size + 1:
            raise IntegrityError(f"index file {path}: ScaNN rows and ids do not match")
        index._searcher = artifacts.load()
        return index
