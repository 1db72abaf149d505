"""Embed many images on all cores: worker processes, bounded in-flight work, a template cache.

dlib runs on one core, so throughput comes from processes, each holding its own Engine (an
ONNX embedder there runs on one thread). Each task is a small chunk of images whose faces are
embedded in one batch. Bulk enrolment with the ``largest`` selection detects on a small copy
first (:meth:`Detector.detect_prominent`). Results come back in input order; failures are
values (error code + message), never raised, so one bad file cannot stop a bulk job.

Workers are started from a fork server, never forked from the caller: dlib's CNN detector
keeps a thread pool, and a process forked after the caller had used it waits forever on that
pool's locks in its first CNN call (seen when the ``hog+cnn`` default sent a worker's image to
the CNN after the parent had run it). The fork server is a fresh process that has run nothing.

A worker's parent is the fork server, and every worker holds the pipe whose closing tells the
fork server that the caller died, so neither notices a ``kill -9`` of the caller: each worker
therefore watches the caller's pid itself (:func:`_exit_when_gone`) and exits when it is gone.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.embed.runtime import runtime_embedder
from faceledger.errors import FaceLedgerError
from faceledger.pipeline import Engine, PreparedFace
from faceledger.types import Detection, FaceResult, Pixels

CHUNK = 8
"""Images per worker task: their faces go through the embedder in one batch."""


@dataclass(frozen=True)
class EmbedOutcome:
    path: str
    result: FaceResult | None
    """The selected face with its template, or None when the image could not be used."""
    error: str | None = None
    """Stable error code (``no_face``, ``bad_image``, ``quality_rejected`` ...)."""
    message: str | None = None
    sha256: str | None = None
    faces: int = 0
    """How many faces the detector found."""


_engine: Engine | None = None


def worker_engine(settings: Settings) -> Engine:
    """An Engine for a process that has one core to itself (single-threaded ONNX runtime)."""
    engine = Engine(settings)
    embedder, _ = runtime_embedder(engine.card, settings, threads=1)
    return Engine(settings, card=engine.card, embedder=embedder)


def _init_worker(settings: Settings, caller_pid: int) -> None:
    global _engine
    _exit_when_gone(caller_pid)
    _engine = worker_engine(settings)


def _exit_when_gone(pid: int) -> None:
    """End this process as soon as process ``pid`` (the caller of the pool) has ended.

    Waits on a pidfd where the kernel has them (Linux ≥ 5.3), else polls once a second.
    """
    try:
        fd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(70)
    except (OSError, AttributeError):
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has exited
        else:
            while _alive(pid):
                time.sleep(1.0)
        os._exit(70)  # no cleanup: the caller that wanted the results is gone

    threading.Thread(target=watch, name="faceledger-caller-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _embed_chunk(paths: list[str], enrolment: bool) -> list[EmbedOutcome]:
    assert _engine is not None
    return embed_many(_engine, paths, enrolment=enrolment)


def embed_one(engine: Engine, path: str, *, enrolment: bool = False) -> EmbedOutcome:
    """Embed the selected face of one image file, turning domain errors into values."""
    return embed_many(engine, [path], enrolment=enrolment)[0]


def _detect(engine: Engine, pixels: Pixels, enrolment: bool) -> list[Detection]:
    # Bulk embedding of one face per image with ``largest`` or ``primary``: a pass on a small
    # copy finds the prominent faces cheaply, and the policy picks among them (a face too
    # small for that pass would lose to the larger one anyway, unless the larger one is far
    # off-centre). ``only`` needs every face the full search finds (a second face refuses).
    if enrolment and engine.settings.face_selection in ("largest", "primary"):
        return engine.detector.detect_prominent(pixels)
    return engine.detector.detect(pixels)


@dataclass(frozen=True)
class _Ready:
    index: int
    prepared: PreparedFace
    sha256: str
    faces: int


def _prepare(engine: Engine, index: int, path: str, enrolment: bool) -> _Ready | EmbedOutcome:
    """Decode and detect one image, then :meth:`Engine.prepare` it (select, gate, align: what
    Engine.embed does before the embedder), or the failure as an outcome."""
    sha: str | None = None
    faces = 0
    try:
        img = engine.load(path)
        sha = img.sha256
        detections = _detect(engine, img.pixels, enrolment)
        faces = len(detections)
        return _Ready(index, engine.prepare(img, detections, enrolment=enrolment), sha, faces)
    except FaceLedgerError as exc:
        return EmbedOutcome(path, None, exc.code, exc.message, sha, faces)


def embed_many(
    engine: Engine, paths: Sequence[str], *, enrolment: bool = False
) -> list[EmbedOutcome]:
    """:func:`embed_one` for several files, their faces embedded in one batch.

    Only the aligned chips (not the decoded images) are kept until the batch runs.
    """
    outcomes: list[EmbedOutcome | None] = [None] * len(paths)
    ready: list[_Ready] = []
    for i, p in enumerate(paths):
        prepared = _prepare(engine, i, p, enrolment)
        if isinstance(prepared, EmbedOutcome):
            outcomes[i] = prepared
        else:
            ready.append(prepared)
    if ready:
        try:
            templates = engine.embedder.embed([r.prepared.face for r in ready])
        except FaceLedgerError as exc:
            for r in ready:
                outcomes[r.index] = EmbedOutcome(
                    paths[r.index], None, exc.code, exc.message, r.sha256, r.faces
                )
        else:
            for r, t in zip(ready, templates, strict=True):
                outcomes[r.index] = EmbedOutcome(
                    paths[r.index], r.prepared.result(t), sha256=r.sha256, faces=r.faces
                )
    return [o for o in outcomes if o is not None]


def worker_count(settings: Settings) -> int:
    return settings.workers if settings.workers > 0 else (os.cpu_count() or 1)


def iter_embed_paths(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    enrolment: bool = False,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
) -> Iterator[tuple[int, EmbedOutcome]]:
    """Yield ``(input index, outcome)`` as each image finishes (not in input order).

    At most ``2 × workers`` chunks of :data:`CHUNK` images are in flight, so memory stays
    bounded however long the list is. With one worker everything runs in this process.
    """
    n_workers = workers if workers is not None else worker_count(settings)
    items = [str(p) for p in paths]
    chunks = [list(range(i, min(i + CHUNK, len(items)))) for i in range(0, len(items), CHUNK)]
    if n_workers <= 1 or len(items) <= 1:
        engine = worker_engine(settings)
        for chunk in chunks:
            for i, out in zip(
                chunk,
                embed_many(engine, [items[i] for i in chunk], enrolment=enrolment),
                strict=True,
            ):
                if on_done:
                    on_done(out)
                yield i, out
        return
    with ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(settings, os.getpid()),
    ) as pool:
        pending: dict[Future[list[EmbedOutcome]], list[int]] = {}
        it = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * n_workers:
                try:
                    chunk = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(_embed_chunk, [items[i] for i in chunk], enrolment)] = chunk
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                chunk = pending.pop(fut)
                for i, out in zip(chunk, fut.result(), strict=True):
                    if on_done:
                        on_done(out)
                    yield i, out


def _file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def embed_paths(
    paths: Sequence[str | Path],
    settings: Settings,
    *,
    enrolment: bool = False,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    cache: TemplateCache | None = None,
) -> list[EmbedOutcome]:
    """All outcomes in input order; with a cache, files already embedded are not redone.

    Enrolment outcomes (quality gates applied) are never cached: gates may change.
    """
    results: list[EmbedOutcome | None] = [None] * len(paths)
    todo: list[int] = []
    hashes: dict[int, str] = {}
    for i, p in enumerate(paths):
        sha = _file_sha256(str(p)) if cache is not None and not enrolment else None
        hit = cache.get(sha) if cache is not None and sha is not None else None
        if hit is not None and sha is not None:
            face, faces, error, message = hit
            results[i] = EmbedOutcome(str(p), face, error, message, sha, faces)
            if on_done:
                on_done(results[i])  # type: ignore[arg-type]
        else:
            todo.append(i)
            if sha is not None:
                hashes[i] = sha
    for j, out in iter_embed_paths(
        [paths[i] for i in todo], settings, enrolment=enrolment, workers=workers, on_done=on_done
    ):
        i = todo[j]
        results[i] = out
        if cache is not None and i in hashes and out.sha256 == hashes[i]:
            cache.put(out.sha256, out.result, out.faces, out.error, out.message)
        elif cache is not None and i in hashes and out.error == "bad_image":
            cache.put(hashes[i], None, 0, out.error, out.message)
    return [r for r in results if r is not None]
