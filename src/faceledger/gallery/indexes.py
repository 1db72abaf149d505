"""One vector index per gallery, kept in agreement with the store (the source of truth).

Indexes are files under ``<data_dir>/indexes``. The store commits first; an index is a cache
of it: on opening, its ids are compared with the store's and any difference (after a crash
between a commit and an index save) is repaired by adding or removing those templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceledger.index import VectorIndex, choose_index, load_index, make_index
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


class IndexManager:
    def __init__(self, store: SqlStore, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self._open: dict[int, VectorIndex] = {}
        self._dirty: set[int] = set()

    def _path(self, gallery: Gallery) -> Path:
        return self.folder / f"gallery-{gallery.id}.index"

    def get(self, gallery: Gallery, dimension: int) -> VectorIndex:
        """The gallery's index, loaded (or built from the store) and checked against it."""
        idx = self._open.get(gallery.id)
        if idx is not None:
            return idx
        path = self._path(gallery)
        if path.exists():
            try:
                idx = load_index(path)
            except Exception:  # a torn or foreign file: the store can always rebuild it
                idx = None
            if idx is not None and (idx.dimension != dimension or idx.model_id != gallery.model_id):
                idx = None
        if idx is None:
            idx = self._new(gallery, dimension)
        self._open[gallery.id] = idx
        self.sync(gallery, dimension)
        return idx

    def _new(self, gallery: Gallery, dimension: int) -> VectorIndex:
        """A new index of the kind that suits the gallery's size (recall@10 target 0.99)."""
        expected = int(self.store.template_ids(gallery.id).size)
        choice = choose_index(expected, 0.99)
        idx = make_index(choice.kind, dimension, gallery.model_id, **choice.params)
        self.store.update_gallery(gallery.id, index_description=idx.describe())
        return idx

    def sync(self, gallery: Gallery, dimension: int) -> SyncReport:
        """Make the index hold exactly the store's templates of ``gallery``."""
        idx = self._open.get(gallery.id) or self.get(gallery, dimension)
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
                idx.add_templates(ids, [found[i].template for i in ids])
        if extra.size or missing.size:
            self._dirty.add(gallery.id)
            self.save(gallery)
        return SyncReport(gallery.name, int(missing.size), int(extra.size), len(idx))

    def add(self, gallery: Gallery, ids: list[int], templates: list[Template]) -> None:
        if not ids:
            return
        idx = self.get(gallery, templates[0].dimension)
        fresh = [(i, t) for i, t in zip(ids, templates, strict=True) if i not in idx]
        if fresh:
            idx.add_templates([i for i, _ in fresh], [t for _, t in fresh])
            self._dirty.add(gallery.id)

    def remove(self, gallery_id: int, ids: tuple[int, ...] | list[int]) -> None:
        idx = self._open.get(gallery_id)
        if idx is not None and ids:
            idx.remove(np.asarray(ids, dtype=np.int64))
            self._dirty.add(gallery_id)

    def save(self, gallery: Gallery) -> None:
        idx = self._open.get(gallery.id)
        if idx is not None and gallery.id in self._dirty:
            self.folder.mkdir(parents=True, exist_ok=True)
            idx.save(self._path(gallery))
            self._dirty.discard(gallery.id)

    def save_all(self) -> None:
        for gid in list(self._dirty):
            idx = self._open.get(gid)
            if idx is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                idx.save(self.folder / f"gallery-{gid}.index")
            self._dirty.discard(gid)

    def drop(self, gallery: Gallery) -> None:
        idx = self._open.pop(gallery.id, None)
        if idx is not None:
            idx.close()
        self._dirty.discard(gallery.id)
        self._path(gallery).unlink(missing_ok=True)

    def close(self) -> None:
        for idx in self._open.values():
            idx.close()
        self._open.clear()
