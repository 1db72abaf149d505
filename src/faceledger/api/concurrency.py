"""Thread-safety for one workspace shared by the service's worker threads.

FastAPI runs each request in a thread pool. The SQLAlchemy engine is thread-safe; two things
of a workspace are not:

- the Engine's dlib detector and embedder (native objects, not safe to share, and holding
  the GIL while they run, so threads would not run them in parallel anyway). One lock
  serialises detection and embedding; decoding stays outside it.
- the in-memory vector indexes and the manager that opens, syncs and saves them. One
  re-entrant lock guards the manager and every call on an index it hands out, so a search
  never reads an index while an enrolment adds to it or a save writes it.

The two locks are separate: searches and enrolments overlap their store and audit work with
another request's detection. A process pool for the model would add parallelism on several
cores; at ~0.3 s per image on the deployments this serves, one lock keeps the design simple
and the benchmark (``benchmarks/load_service.py``) measures what it costs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy.typing as npt

from faceledger.config import FaceSelection, Settings
from faceledger.errors import Conflict
from faceledger.gallery.indexes import IndexManager, ReindexReport, SyncReport
from faceledger.index import IndexChoice, VectorIndex
from faceledger.index.base import IdArray, SearchHits
from faceledger.pipeline import Engine, ImageInput, VerifyResult
from faceledger.store import Gallery, SqlStore
from faceledger.types import AlignedFace, DecodedImage, Detection, FaceResult, Template


class SerialEngine(Engine):
    """An :class:`Engine` whose model calls run one at a time (decoding runs concurrently)."""

    def __init__(self, settings: Settings | None = None, **parts: Any) -> None:
        super().__init__(settings, **parts)
        self._lock = threading.RLock()

    @classmethod
    def around(cls, engine: Engine) -> SerialEngine:
        """A serial engine sharing ``engine``'s settings, model card, detector and embedder."""
        if isinstance(engine, SerialEngine):
            return engine
        return cls(
            engine.settings, card=engine.card, detector=engine.detector, embedder=engine.embedder
        )

    def _sibling(self, settings: Settings) -> Engine:
        sibling = SerialEngine(settings, detector=self.detector)
        sibling._lock = self._lock  # one model lock per process, whichever card runs
        return sibling

    def warm_up(self) -> None:
        """Load the model files now rather than on the first request."""
        with self._lock:
            _ = self.card, self.detector, self.embedder

    def detect(self, image: ImageInput) -> list[FaceResult]:
        img = self.load(image)
        with self._lock:
            return super().detect(img)

    def embed_detections(
        self, img: DecodedImage, detections: Sequence[Detection]
    ) -> list[FaceResult]:
        with self._lock:
            return super().embed_detections(img, detections)

    def embed_faces(self, faces: Sequence[AlignedFace]) -> list[Template]:
        with self._lock:
            return super().embed_faces(faces)

    def embed_all(self, image: ImageInput) -> list[FaceResult]:
        img = self.load(image)
        with self._lock:
            return super().embed_all(img)

    def embed(
        self,
        image: ImageInput,
        *,
        selection: FaceSelection | None = None,
        enrolment: bool = False,
    ) -> FaceResult:
        img = self.load(image)
        with self._lock:
            return super().embed(img, selection=selection, enrolment=enrolment)

    def embed_detected(
        self,
        img: DecodedImage,
        detections: Sequence[Detection],
        *,
        selection: FaceSelection | None = None,
        enrolment: bool = False,
    ) -> FaceResult:
        with self._lock:
            return super().embed_detected(img, detections, selection=selection, enrolment=enrolment)

    def verify(
        self,
        a: ImageInput,
        b: ImageInput,
        *,
        fmr: float | None = None,
        selection: FaceSelection | None = None,
    ) -> VerifyResult:
        img_a, img_b = self.load(a), self.load(b)
        with self._lock:
            return super().verify(img_a, img_b, fmr=fmr, selection=selection)


class LockedIndex(VectorIndex):
    """A view of one gallery's index whose every call holds the manager's lock."""

    kind = "locked-view"

    def __init__(self, inner: VectorIndex, lock: threading.RLock) -> None:
        super().__init__(inner.dimension, inner.model_id)
        self._inner = inner
        self._lock = lock

    @property
    def inner(self) -> VectorIndex:
        return self._inner

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        with self._lock:
            self._inner.add(ids, vectors)

    def add_templates(self, ids: npt.ArrayLike, templates: Sequence[Template]) -> None:
        with self._lock:
            self._inner.add_templates(ids, templates)

    def remove(self, ids: npt.ArrayLike) -> int:
        with self._lock:
            return self._inner.remove(ids)

    def search(self, queries: npt.ArrayLike, k: int) -> SearchHits:
        with self._lock:
            return self._inner.search(queries, k)

    def __len__(self) -> int:
        with self._lock:
            return len(self._inner)

    def ids(self) -> IdArray:
        with self._lock:
            return self._inner.ids()

    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[Any]:
        with self._lock:
            return self._inner.contains(ids)

    def save(self, path: str | Path) -> None:
        with self._lock:
            self._inner.save(path)

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Self:
        raise TypeError("a LockedIndex wraps an open index; load the backend itself")

    def params(self) -> dict[str, Any]:
        return self._inner.params()

    def describe(self) -> dict[str, Any]:
        return self._inner.describe()

    def memory_bytes(self) -> int:
        with self._lock:
            return self._inner.memory_bytes()

    def close(self) -> None:
        with self._lock:
            self._inner.close()


log = logging.getLogger("faceledger.api")


class LockedIndexManager(IndexManager):
    """An :class:`IndexManager` safe to share between threads (one re-entrant lock).

    Re-indexing a gallery that has outgrown its index runs in a background thread: the
    build holds no lock (the old index keeps answering searches and taking enrolments), and
    only the final reconcile-and-swap takes the lock.
    """

    def __init__(self, store: SqlStore, folder: Path, *, shared_uri: str | None = None) -> None:
        super().__init__(store, folder, shared_uri=shared_uri)
        self.lock = threading.RLock()
        self._workers: dict[int, threading.Thread] = {}

    @classmethod
    def replacing(cls, manager: IndexManager) -> LockedIndexManager:
        """A locked manager over the same store and folder; ``manager``'s indexes are saved
        and closed first (they are reopened from the same files)."""
        if isinstance(manager, LockedIndexManager):
            return manager
        manager.save_all()
        manager.close()
        return cls(manager.store, manager.folder, shared_uri=manager.shared_uri)

    def get(self, gallery: Gallery, dimension: int) -> VectorIndex:
        with self.lock:
            return LockedIndex(super().get(gallery, dimension), self.lock)

    def sync(self, gallery: Gallery, dimension: int) -> SyncReport:
        with self.lock:
            return super().sync(gallery, dimension)

    def add(self, gallery: Gallery, ids: list[int], templates: list[Template]) -> None:
        with self.lock:
            super().add(gallery, ids, templates)

    def remove(self, gallery_id: int, ids: tuple[int, ...] | list[int]) -> None:
        with self.lock:
            super().remove(gallery_id, ids)

    def save(self, gallery: Gallery) -> None:
        with self.lock:
            super().save(gallery)

    def save_all(self) -> None:
        with self.lock:
            super().save_all()

    def drop(self, gallery: Gallery) -> None:
        with self.lock:
            super().drop(gallery)

    def close(self) -> None:
        self.wait_reindexing()
        with self.lock:
            super().close()

    # -- background re-indexing -------------------------------------------------------------
    def _current(self, gallery: Gallery, dimension: int) -> VectorIndex:
        with self.lock:
            return super()._current(gallery, dimension)

    def reindex_choice(self, gallery: Gallery, dimension: int) -> IndexChoice | None:
        with self.lock:
            return super().reindex_choice(gallery, dimension)

    def _claim(self, gallery: Gallery) -> None:
        with self.lock:
            super()._claim(gallery)

    def _release(self, gallery: Gallery) -> None:
        with self.lock:
            super()._release(gallery)

    def _swap(self, gallery: Gallery, fresh: VectorIndex) -> None:
        with self.lock:
            super()._swap(gallery, fresh)

    def maybe_reindex(self, gallery: Gallery, dimension: int) -> ReindexReport | None:
        """Start re-indexing in a background thread if the gallery has outgrown its index
        (returns None at once; :meth:`wait_reindexing` waits for it)."""
        with self.lock:
            running = self._workers.get(gallery.id)
            if gallery.id in self._reindexing or (running is not None and running.is_alive()):
                return None
            choice = self.reindex_choice(gallery, dimension)
            if choice is None:
                return None
            worker = threading.Thread(
                target=self._reindex_worker,
                args=(gallery, dimension, choice),
                name=f"faceledger-reindex-{gallery.id}",
                daemon=True,
            )
            self._workers[gallery.id] = worker
        worker.start()
        return None

    def _reindex_worker(self, gallery: Gallery, dimension: int, choice: IndexChoice) -> None:
        try:
            report = self.reindex(gallery, dimension, choice)
            if report is not None:
                log.info("re-indexed gallery %s: %s", gallery.name, report)
        except Conflict:
            pass  # another worker got there first
        except Exception:  # the old index stays in service; the next enrolment tries again
            log.exception("re-indexing gallery %s failed", gallery.name)

    def wait_reindexing(self, timeout: float | None = None) -> bool:
        """Wait for background re-indexing to end; False if some is still running."""
        with self.lock:
            workers = list(self._workers.values())
        for w in workers:
            w.join(timeout)
        with self.lock:
            self._workers = {g: w for g, w in self._workers.items() if w.is_alive()}
            return not self._workers
