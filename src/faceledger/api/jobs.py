"""Video-search jobs of the service: a bounded worker pool and the status of each job.

A video takes seconds to minutes to search, longer than a request should wait, so the service
accepts an upload (202), runs the search on a small pool of worker threads and lets its
creator poll the job's status and progress, read its result, or cancel it.

**Jobs are held in this process's memory only.** A restart (or a crash) loses every job's
status and any queued or running search; a search that had finished had already recorded what
it found in the workspace, one audit entry for the video and a review record per lead track,
and those persist. A cancelled or failed search records nothing (the use case writes only
once the video has been read to its end). One service process per workspace: jobs are not
shared between processes.

Each job owns a temporary copy of its upload (mode 0600, under ``<data_dir>/tmp``), deleted
when the job ends, whatever the outcome, or when a queued job is cancelled. Finished jobs are
forgotten ``ttl_s`` after they end. At most ``workers`` jobs run at once and ``max_queued``
wait; past that a new job is refused (429) before its upload is copied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from faceledger.access import Operation, User, is_allowed
from faceledger.errors import (
    Cancelled,
    Conflict,
    FaceLedgerError,
    NotFound,
    PermissionDenied,
    RateLimited,
    TooLarge,
)
from faceledger.usecases import VideoProgress
from faceledger.video import VideoInfo

log = logging.getLogger("faceledger.api.jobs")

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[JobState] = frozenset({"done", "failed", "cancelled"})

UPLOAD_PREFIX = "video-upload-"
"""Temporary uploads are named so; leftovers of a crashed process are swept at start."""
COPY_CHUNK = 1024 * 1024

Work = Callable[[threading.Event, Callable[[VideoProgress], None]], dict[str, Any]]
"""What a job runs: given its cancel flag and a progress callback, the result as JSON."""


@dataclass(frozen=True)
class JobProgress:
    """How far a job has got (the use case's last :class:`VideoProgress`)."""

    seconds_read: float = 0.0
    duration_s: float | None = None
    frames_sampled: int = 0
    tracks_searched: int = 0
    tracks_with_leads: int = 0

    @property
    def fraction(self) -> float | None:
        """Share of the video read, when its duration is known."""
        if not self.duration_s or self.duration_s <= 0:
            return None
        return min(1.0, max(0.0, self.seconds_read / self.duration_s))


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class VideoJob:
    """One job as it stands; the registry replaces it (under its lock) on every change, so a
    reader always holds a consistent copy."""

    id: str
    actor: str
    galleries: tuple[str, ...]
    video: VideoInfo
    upload: Path = field(repr=False)
    created_at: float
    cancel: threading.Event = field(repr=False, compare=False)
    state: JobState = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    result: dict[str, Any] | None = field(default=None, repr=False)
    error: JobError | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def cancel_requested(self) -> bool:
        return self.cancel.is_set()

    def visible_to(self, user: User) -> bool:
        """Its creator, and auditors (who may read every search), may see a job."""
        return user.id == self.actor or is_allowed(user, Operation.AUDIT_READ)


def save_upload(source: BinaryIO, dest: Path, max_bytes: int) -> int:
    """Copy an upload into ``dest`` a chunk at a time; :class:`TooLarge` past ``max_bytes``
    (the partial copy is left for the caller, who deletes ``dest`` on any error)."""
    written = 0
    with dest.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise TooLarge(f"the video is larger than {max_bytes:,} bytes")
            out.write(chunk)
    return written


class VideoJobs:
    """The registry and worker pool of one service (thread-safe)."""

    def __init__(
        self,
        tmp_dir: Path,
        *,
        workers: int = 1,
        max_queued: int = 8,
        ttl_s: float = 24 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tmp_dir = tmp_dir
        self.max_queued = max(0, max_queued)
        self.ttl_s = ttl_s
        self._clock = clock
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="video")
        self._sweep_leftovers()

    # -- uploads --------------------------------------------------------------------------

    def upload_path(self) -> Path:
        """A new empty file, readable by this process's user only, for one upload."""
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=".video", dir=self.tmp_dir)
        os.close(fd)  # mkstemp makes it 0600
        return Path(name)

    def _sweep_leftovers(self) -> None:
        """Delete uploads a crashed process left behind (older than the TTL: a live
        process's queued upload is never that old)."""
        if not self.tmp_dir.is_dir():
            return
        cutoff = self._clock() - self.ttl_s
        for path in self.tmp_dir.glob(f"{UPLOAD_PREFIX}*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    # -- jobs -----------------------------------------------------------------------------

    def check_room(self) -> None:
        """:class:`RateLimited` when the queue is full (checked again by :meth:`submit`)."""
        with self._lock:
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:
        if self._closed:
            raise RateLimited("the service is shutting down", retry_after_s=30.0)
        waiting = sum(1 for j in self._jobs.values() if j.state == "queued")
        if waiting >= self.max_queued:
            raise RateLimited(
                f"{waiting} video searches are already waiting; try again later",
                retry_after_s=30.0,
            )

    def submit(
        self, actor: User, galleries: tuple[str, ...], video: VideoInfo, upload: Path, work: Work
    ) -> VideoJob:
        """Queue ``work``; the job owns ``upload`` from now on (deleted when it ends). On a
        refusal the upload stays the caller's."""
        with self._lock:
            self._forget_expired()
            self._refuse_if_full()
            job = VideoJob(
                id=uuid.uuid4().hex,
                actor=actor.id,
                galleries=galleries,
                video=video,
                upload=upload,
                created_at=self._clock(),
                cancel=threading.Event(),
                progress=JobProgress(duration_s=video.duration_s),
            )
            self._jobs[job.id] = job
            self._pool.submit(self._run, job.id, work)
        return job

    def get(self, job_id: str, user: User) -> VideoJob:
        """The job, if ``user`` may see it; :class:`NotFound` otherwise (ids not revealed)."""
        with self._lock:
            self._forget_expired()
            job = self._jobs.get(job_id)
        if job is None or not job.visible_to(user):
            raise NotFound(f"no video search job {job_id!r}")
        return job

    def cancel(self, job_id: str, user: User) -> VideoJob:
        """Cancel a queued job at once, or ask a running one to stop at its next frame
        (it then ends ``cancelled``, having recorded nothing). Only its creator may (an
        auditor, who may read it, is refused); :class:`Conflict` once it has finished."""
        job = self.get(job_id, user)
        if job.actor != user.id:
            raise PermissionDenied("only the user who started a video search may cancel it")
        with self._lock:
            found = self._jobs.get(job_id)
            if found is None:  # forgotten meanwhile
                raise NotFound(f"no video search job {job_id!r}")
            job = found
            if job.finished:
                raise Conflict(f"the video search job has already ended ({job.state})")
            job.cancel.set()
            if job.state == "queued":
                job = self._end(job, "cancelled")
        return job

    def jobs(self) -> list[VideoJob]:
        with self._lock:
            return list(self._jobs.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def close(self) -> None:
        """Stop: cancel every job (queued ones at once, running ones at their next frame),
        wait for the workers, delete every upload left."""
        with self._lock:
            self._closed = True
            for job in list(self._jobs.values()):
                job.cancel.set()
                if job.state == "queued":
                    self._end(job, "cancelled")
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for job in self._jobs.values():
                _delete(job.upload)

    # -- the worker -----------------------------------------------------------------------

    def _run(self, job_id: str, work: Work) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                return  # cancelled while waiting: its upload is already gone
            job = self._replace(job, state="running", started_at=self._clock())
        outcome: JobState = "failed"
        result: dict[str, Any] | None = None
        error: JobError | None = None
        try:
            result = work(job.cancel, lambda p: self._progress(job_id, p))
            outcome = "done"
        except Cancelled:
            outcome = "cancelled"
        except FaceLedgerError as exc:
            error = JobError(exc.code, exc.message)
        except Exception:
            log.exception("video search job %s failed", job_id)
            error = JobError("internal_error", "an unexpected error occurred")
        finally:
            with self._lock:
                current = self._jobs.get(job_id, job)
                self._end(current, outcome, result=result, error=error)

    def _progress(self, job_id: str, p: VideoProgress) -> None:
        progress = JobProgress(
            seconds_read=round(p.seconds_read, 3),
            duration_s=p.duration_s,
            frames_sampled=p.frames_sampled,
            tracks_searched=p.tracks_searched,
            tracks_with_leads=p.tracks_with_leads,
        )
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.state == "running":
                self._replace(job, progress=progress)

    # -- under the lock -------------------------------------------------------------------

    def _replace(self, job: VideoJob, **changes: Any) -> VideoJob:
        new = dataclasses.replace(job, **changes)
        self._jobs[job.id] = new
        return new

    def _end(
        self,
        job: VideoJob,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
    ) -> VideoJob:
        _delete(job.upload)
        progress = job.progress
        if state == "done" and progress.duration_s:
            progress = dataclasses.replace(progress, seconds_read=progress.duration_s)
        return self._replace(
            job,
            state=state,
            finished_at=self._clock(),
            result=result,
            error=error,
            progress=progress,
        )

    def _forget_expired(self) -> None:
        cutoff = self._clock() - self.ttl_s
        expired = [
            j.id
            for j in self._jobs.values()
            if j.finished_at is not None and j.finished_at < cutoff
        ]
        for job_id in expired:
            del self._jobs[job_id]


def _delete(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
