"""Embed many images on all cores: worker processes, bounded in-flight work, a template cache.

dlib runs on one core, so throughput comes from processes, each holding its own Engine.
Results come back in input order; failures are values (error code + message), never raised,
so one bad file cannot stop a bulk job.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.errors import FaceLedgerError
from faceledger.pipeline import Engine
from faceledger.types import FaceResult


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


def _init_worker(settings: Settings) -> None:
    global _engine
    _engine = Engine(settings)


def _embed_one(path: str, enrolment: bool) -> EmbedOutcome:
    assert _engine is not None
    return embed_one(_engine, path, enrolment=enrolment)


def embed_one(engine: Engine, path: str, *, enrolment: bool = False) -> EmbedOutcome:
    """Embed the selected face of one image file, turning domain errors into values."""
    sha: str | None = None
    faces = 0
    try:
        img = engine.load(path)
        sha = img.sha256
        detections = engine.detector.detect(img.pixels)
        faces = len(detections)
        result = engine.embed_detected(img, detections, enrolment=enrolment)
        return EmbedOutcome(path, result, sha256=sha, faces=faces)
    except FaceLedgerError as exc:
        return EmbedOutcome(path, None, exc.code, exc.message, sha, faces)


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

    At most ``2 × workers`` images are in flight, so memory stays bounded however long the
    list is. With one worker everything runs in this process.
    """
    n_workers = workers if workers is not None else worker_count(settings)
    items = [str(p) for p in paths]
    if n_workers <= 1 or len(items) <= 1:
        engine = Engine(settings)
        for i, p in enumerate(items):
            out = embed_one(engine, p, enrolment=enrolment)
            if on_done:
                on_done(out)
            yield i, out
        return
    with ProcessPoolExecutor(
        max_workers=n_workers, initializer=_init_worker, initargs=(settings,)
    ) as pool:
        pending: dict[Future[EmbedOutcome], int] = {}
        it = iter(enumerate(items))
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * n_workers:
                try:
                    i, p = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(_embed_one, p, enrolment)] = i
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                out = fut.result()
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
