"""One vector index per gallery, kept in agreement with the store (the source of truth).

Indexes are files under ``<data_dir>/indexes``. The store commits first; an index is a cache
of it: on opening, its ids are compared with the store's and any difference (after a crash
between a commit and an index save) is repaired by adding or removing those templates.

The kind of index follows the gallery's size (``faceledger.index.choose_index``): after
enrolment, :meth:`IndexManager.maybe_reindex` asks ``needs_rebuild`` whether the current
index still fits and, when it does not, builds the new one from a snapshot of the store,
reconciles it with the store (templates enrolled or removed during the build), and swaps it
in. The new kind is recorded in the gallery's ``index_description``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.errors import Conflict
from faceledger.index import (
    IndexChoice,
    VectorIndex,
    choose_index,
    load_index,
    make_index,
    needs_rebuild,
    rebuild,
    retune,
)
from faceledger.index.milvus_index import MilvusIndex
from faceledger.index.shared_view import SharedIndexView
from faceledger.store import Gallery, SqlStore
from faceledger.types import Template


@dataclass(frozen=True)
class SyncReport:
    gallery: str
    added: int
    removed: int
    size: int

    @property
    def agreed(self) -> bool:
        return self.added == 0 and self.removed == 0


@dataclass(frozen=True)
class ReindexReport:
    """A gallery's index rebuilt as another kind (or the same kind, re-trained)."""

    gallery: str
    before: str
    after: str
    size: int
    seconds: float
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "before": self.before,
            "after": self.after,
            "size": self.size,
            "seconds": round(self.seconds, 2),
            "reason": self.reason,
        }


class IndexManager:
    def __init__(self, store: SqlStore, folder: Path, *, shared_uri: str | None = None) -> None:
        """``shared_uri``: a Milvus URI holding every gallery's index (a partition each),
        shared with other processes; None: an index file per gallery in ``folder``."""
        self.store = store
        self.folder = folder
        self.shared_uri = shared_uri
        self._open: dict[int, VectorIndex] = {}
        self._synced: dict[int, int] = {}
        """Gallery id → the store's generation the open index was last in step with."""
        self._dirty: set[int] = set()
        self._reindexing: set[int] = set()
        # caches of what searches derive from these indexes, kept as long as the manager
        # (each entry checks itself against the galleries' current templates)
        self.cohorts: dict[tuple[int, ...], Any] = {}
        """Galleries searched together → (their template ids' digest, search cohort state);
        owned by ``gallery.ranking``."""
        self.fpir_counts: dict[tuple[int, ...], Any] = {}
        """Galleries searched together → their own FPIR count; owned by ``gallery.selfcal``."""

    def _path(self, gallery: Gallery) -> Path:
        return self.folder / f"gallery-{gallery.id}.index"

    def get(self, gallery: Gallery, dimension: int) -> VectorIndex:
        """The gallery's index, loaded (or built from the store) and checked against it; an
        open index is reconciled first when another process (a replica of the service, the
        CLI) changed the gallery's templates since (one lookup of its generation)."""
        idx = self._open.get(gallery.id)
        if idx is not None:
            generation = self.store.generation(gallery.id)
            if generation == self._synced.get(gallery.id):
                return idx
            if isinstance(idx, SharedIndexView):
                # the process that changed the gallery changed the shared index too (a crash
                # between the two is repaired by the reconcile of the next process to open it)
                idx.invalidate()
                self._synced[gallery.id] = generation
            else:
                self.sync(gallery, dimension)
            return idx
        path = self._path(gallery)
        if self.shared_uri is None and path.exists():
            try:
                idx = load_index(path)
            except Exception:  # a torn or foreign file: the store can always rebuild it
                idx = None
            if idx is not None and (idx.dimension != dimension or idx.model_id != gallery.model_id):
                idx = None
        if idx is None:
            idx = self._new(gallery, dimension)
            self._dirty.add(gallery.id)  # built from the store: on disk at once, below
        self._open[gallery.id] = idx
        self.sync(gallery, dimension)
        self.save(gallery)
        return idx

    def _new(self, gallery: Gallery, dimension: int) -> VectorIndex:
        """A new index of the kind that suits the gallery's size (recall@10 target 0.99),
        built (and trained, for HNSW's SQ8 ranges or IVF's cells) from the store."""
        idx: VectorIndex
        if self.shared_uri is not None:  # filled by the reconcile that follows, if need be
            idx = self._shared(gallery.id, gallery.model_id, dimension)
        else:
            expected = int(self.store.template_ids(gallery.id).size)
            idx = self._build(gallery, dimension, choose_index(expected, 0.99))
        self.store.update_gallery(gallery.id, index_description=idx.describe())
        return idx

    def _shared(self, gallery_id: int, model_id: str, dimension: int) -> SharedIndexView:
        """The gallery's partition in the shared Milvus (created if absent)."""
        assert self.shared_uri is not None
        inner = make_index(
            "milvus", dimension, model_id, uri=self.shared_uri, gallery=f"gallery-{gallery_id}"
        )
        assert isinstance(inner, MilvusIndex)
        return SharedIndexView(inner)

    def _build(self, gallery: Gallery, dimension: int, choice: IndexChoice) -> VectorIndex:
        """An index of ``choice`` holding a snapshot of the store's templates of ``gallery``
        (pure: touches no shared state, so it may run off the request path)."""
        ids: list[np.ndarray] = []
        vecs: list[np.ndarray] = []
        for batch in self.store.iter_templates(gallery.id, batch_size=8192):
            ids.append(batch.ids)
            vecs.append(batch.vectors)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        all_vecs = np.concatenate(vecs) if vecs else np.zeros((0, dimension), np.float32)
        return rebuild(all_ids, all_vecs, choice, dimension=dimension, model_id=gallery.model_id)

    def _reconcile(self, gallery: Gallery, idx: VectorIndex) -> tuple[int, int]:
        """Add the store's templates ``idx`` lacks and drop those the store no longer has."""
        stored = self.store.template_ids(gallery.id)
        held = idx.ids()
        missing = np.setdiff1d(stored, held)
        extra = np.setdiff1d(held, stored)
        if extra.size:
            idx.remove(extra)
        if missing.size:
            for start in range(0, missing.size, 4096):
                chunk = [int(i) for i in missing[start : start + 4096]]
                found = self.store.get_templates(chunk)
                ids = [i for i in chunk if i in found]
                self._put(idx, ids, [found[i].template for i in ids])
        return int(missing.size), int(extra.size)

    def _put(self, idx: VectorIndex, ids: list[int], templates: list[Template]) -> None:
        """Add templates the index lacks. A shared index is written with upserts: another
        process may add the same templates at the same moment (they are the store's)."""
        if not ids:
            return
        if isinstance(idx, SharedIndexView):
            idx.upsert(np.asarray(ids, dtype=np.int64), np.stack([t.vector for t in templates]))
        else:
            idx.add_templates(ids, templates)

    def sync(self, gallery: Gallery, dimension: int) -> SyncReport:
        """Make the index hold exactly the store's templates of ``gallery``."""
        idx = self._open.get(gallery.id)
        if idx is None:  # (not `or`: an empty index is falsy)
            return self._first_sync(gallery, dimension)
        generation = self.store.generation(gallery.id)  # before reading: later changes show
        added, removed = self._reconcile(gallery, idx)
        self._synced[gallery.id] = generation
        if added or removed:
            self._dirty.add(gallery.id)
            self.save(gallery)
        return SyncReport(gallery.name, added, removed, len(idx))

    def _first_sync(self, gallery: Gallery, dimension: int) -> SyncReport:
        """Open the index (which reconciles it) and report what it holds."""
        idx = self.get(gallery, dimension)
        return SyncReport(gallery.name, 0, 0, len(idx))

    def _applied(self, gallery_id: int) -> None:
        """This thread changed the gallery's templates in the store and the index alike: if
        the index was in step just before, it is in step now (no reconcile needed)."""
        made = self.store.written_generation(gallery_id)
        if made is not None and self._synced.get(gallery_id) == made - 1:
            self._synced[gallery_id] = made

    # -- re-indexing as a gallery grows ----------------------------------------------------
    def reindex_choice(self, gallery: Gallery, dimension: int) -> IndexChoice | None:
        """The kind the gallery's index should be rebuilt as, or None while it still fits
        (an HNSW graph that only needs a wider search gets it here, without a rebuild)."""
        current = self._current(gallery, dimension)
        if retune(current):
            self._dirty.add(gallery.id)
        return needs_rebuild(current)

    def _current(self, gallery: Gallery, dimension: int) -> VectorIndex:
        """The gallery's open index itself (not a service's locked view of it)."""
        idx = self._open.get(gallery.id)
        return idx if idx is not None else IndexManager.get(self, gallery, dimension)

    def reindex(
        self, gallery: Gallery, dimension: int, choice: IndexChoice | None = None
    ) -> ReindexReport | None:
        """Rebuild the gallery's index as ``choice`` (default: what ``needs_rebuild`` says;
        None, and nothing done, when the current index still fits).

        The build reads a snapshot of the store and holds no lock; the swap reconciles the new
        index with the store first, so templates enrolled or removed meanwhile are neither lost
        nor resurrected. ``Conflict`` if this gallery is already being re-indexed.
        """
        before = self._current(gallery, dimension)
        wanted = choice or self.reindex_choice(gallery, dimension)
        if wanted is None:
            return None
        self._claim(gallery)
        try:
            started = time.monotonic()
            fresh = self._build(gallery, dimension, wanted)
            self._swap(gallery, fresh)
        finally:
            self._release(gallery)
        return ReindexReport(
            gallery.name, before.kind, fresh.kind, len(fresh), time.monotonic() - started,
            wanted.reason,
        )  # fmt: skip

    def maybe_reindex(self, gallery: Gallery, dimension: int) -> ReindexReport | None:
        """Re-index now if the gallery has outgrown its index (the CLI's choice: it waits;
        the service's manager does this in a background thread instead)."""
        if gallery.id in self._reindexing:
            return None
        return self.reindex(gallery, dimension)

    def _claim(self, gallery: Gallery) -> None:
        if gallery.id in self._reindexing:
            raise Conflict(f"gallery {gallery.name!r} is already being re-indexed")
        self._reindexing.add(gallery.id)

    def _release(self, gallery: Gallery) -> None:
        self._reindexing.discard(gallery.id)

    def _swap(self, gallery: Gallery, fresh: VectorIndex) -> None:
        generation = self.store.generation(gallery.id)
        self._reconcile(gallery, fresh)
        self._open[gallery.id] = fresh
        self._synced[gallery.id] = generation
        self._dirty.add(gallery.id)
        self.save(gallery)
        self.store.update_gallery(gallery.id, index_description=fresh.describe())

    def add(self, gallery: Gallery, ids: list[int], templates: list[Template]) -> None:
        if not ids:
            return
        # the open index as it is (get() would reconcile it for the change just written)
        idx = self._open.get(gallery.id)
        if idx is None:
            idx = self.get(gallery, templates[0].dimension)
        # one membership query for the batch: a Milvus index answers each one over the network
        held = idx.contains(np.asarray(ids, dtype=np.int64))
        fresh = [(i, t) for i, t, h in zip(ids, templates, held, strict=True) if not h]
        if fresh:
            self._put(idx, [i for i, _ in fresh], [t for _, t in fresh])
            self._dirty.add(gallery.id)
        self._applied(gallery.id)

    def remove(self, gallery_id: int, ids: tuple[int, ...] | list[int]) -> None:
        idx = self._open.get(gallery_id)
        if idx is not None and ids:
            idx.remove(np.asarray(ids, dtype=np.int64))
            self._dirty.add(gallery_id)
        if idx is not None:
            self._applied(gallery_id)

    def save(self, gallery: Gallery) -> None:
        if self.shared_uri is not None:  # Milvus keeps what it was given
            self._dirty.discard(gallery.id)
            return
        idx = self._open.get(gallery.id)
        if idx is not None and gallery.id in self._dirty:
            self.folder.mkdir(parents=True, exist_ok=True)
            idx.save(self._path(gallery))
            self._dirty.discard(gallery.id)

    def save_all(self) -> None:
        if self.shared_uri is not None:
            self._dirty.clear()
            return
        for gid in list(self._dirty):
            idx = self._open.get(gid)
            if idx is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                idx.save(self.folder / f"gallery-{gid}.index")
            self._dirty.discard(gid)

    def drop(self, gallery: Gallery) -> None:
        self._synced.pop(gallery.id, None)
        idx = self._open.pop(gallery.id, None)
        if self.shared_uri is not None:  # the partition goes, whoever opened it
            dimension = gallery.index_description.get("dimension")
            if idx is None and isinstance(dimension, int):
                idx = self._shared(gallery.id, gallery.model_id, dimension)
            if isinstance(idx, SharedIndexView):
                idx.drop()
        if idx is not None:
            idx.close()
        self._dirty.discard(gallery.id)
        self._path(gallery).unlink(missing_ok=True)

    def close(self) -> None:
        for idx in self._open.values():
            idx.close()
        self._open.clear()
        self._synced.clear()
