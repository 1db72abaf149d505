"""The state one service holds: its workspace (made thread-safe), key cache, image store,
video-search jobs and retention timer."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from faceledger.api.concurrency import LockedIndexManager, SerialEngine
from faceledger.api.jobs import VideoJobs
from faceledger.api.keys import KeyCache
from faceledger.api.limits import AuthLimits
from faceledger.api.retention import RetentionTimer, check_schedule
from faceledger.config import Settings
from faceledger.gallery import Workspace, open_workspace
from faceledger.video import VideoLimits, limits_from

UPLOAD_MAX_BYTES = 1024**3
"""Largest video upload by default: each is copied to disk before its search starts."""


def video_limits_for(settings: Settings, options: ServiceOptions) -> VideoLimits:
    """The limits uploaded videos are held to: the operator's ``options.video_limits``, or
    else the workspace settings' ``video_max_*`` (as the CLI uses them) with uploads capped
    at :data:`UPLOAD_MAX_BYTES`."""
    if options.video_limits is not None:
        return options.video_limits
    limits = limits_from(settings)
    return dataclasses.replace(limits, max_bytes=min(limits.max_bytes, UPLOAD_MAX_BYTES))


@dataclass(frozen=True)
class ServiceOptions:
    """How the service behaves beyond the engine's :class:`Settings`."""

    keep_images: bool = True
    """Keep each enrolled image (for reviewers); erased with its template."""
    keep_probes: bool = True
    """Keep each search's probe image, so every reviewer sees what was searched."""
    max_request_bytes: int = 64 * 1024 * 1024
    max_files: int = 50
    """Most files in one bulk enrolment request."""
    key_cache_ttl_s: float = 5.0
    key_cache_entries: int = 1024
    auth_limits: AuthLimits = field(default_factory=AuthLimits)
    """What bad API keys may cost: failures per client and key id, the verification pool."""
    reports_dir: Path | None = None
    """Evaluation reports (HTML) to serve; default ``<data_dir>/reports``."""
    audit_image_views: bool = True
    """Record in the audit log who looked at which enrolled or probe image."""
    web_ui: bool = True
    video_limits: VideoLimits | None = None
    """What an uploaded video may be: bytes (the request body limit of video uploads follows
    it), pixels, duration. None: the workspace settings' ``video_max_*``, uploads capped at
    1 GiB (:func:`video_limits_for`)."""
    max_video_jobs: int = 1
    """Video searches run at once (each keeps about one core busy)."""
    max_queued_video_jobs: int = 8
    """Video searches waiting for a worker; past that a new one is refused (429)."""
    video_job_ttl_s: float = 24 * 3600.0
    """How long a finished video search job's status and result stay readable."""
    retention_interval_s: float | None = 300.0
    """Apply the galleries' retention periods in the background every this many seconds
    (:mod:`faceledger.api.retention`), so that a gallery's period of hours holds to within
    this interval. None or 0: never; then schedule ``faceledger retention apply``."""
    retention_first_run_s: float = 10.0
    """Seconds from the start of serving to the first background retention run."""

    def __post_init__(self) -> None:
        check_schedule(self.retention_interval_s, self.retention_first_run_s)

    def applied_to(self, settings: Settings) -> Settings:
        """``settings`` with the service's choices on keeping and viewing images, which the
        use cases read from the settings like the CLI's."""
        return dataclasses.replace(
            settings,
            keep_enrolled_images=self.keep_images,
            keep_probe_images=self.keep_probes,
            audit_image_views=self.audit_image_views,
        )


class Service:
    """Everything a request handler needs, built once per app."""

    def __init__(self, ws: Workspace, options: ServiceOptions, *, owns_workspace: bool) -> None:
        self.ws = ws
        self.options = options
        self.owns_workspace = owns_workspace
        self.keys = KeyCache(
            ws.access,
            ttl_s=options.key_cache_ttl_s,
            max_entries=options.key_cache_entries,
            limits=options.auth_limits,
            epoch=ws.audit.access_epoch,
        )
        self.images = ws.images
        self.video_limits = video_limits_for(ws.settings, options)
        self.video_jobs = VideoJobs(
            ws.settings.data_dir / "tmp",
            workers=options.max_video_jobs,
            max_queued=options.max_queued_video_jobs,
            ttl_s=options.video_job_ttl_s,
        )
        self.retention_lock = threading.Lock()
        """Held while retention is applied (by the timer or on request): runs never overlap."""
        self.retention = (
            RetentionTimer(
                ws,
                interval_s=options.retention_interval_s,
                first_run_s=options.retention_first_run_s,
                lock=self.retention_lock,
            )
            if options.retention_interval_s
            else None
        )
        self.started = time.time()

    @classmethod
    def open(
        cls, settings: Settings, workspace: Workspace | None, options: ServiceOptions
    ) -> Service:
        """Open the workspace named by ``settings``, or take over ``workspace``.

        A workspace handed in is made safe for threads in place: its engine is wrapped to run
        the model one call at a time and its index manager is replaced by a locked one over
        the same files. Keep using that object (not a copy) while the service runs.
        """
        if workspace is None:
            engine = SerialEngine(settings)
            ws = open_workspace(options.applied_to(settings), engine=engine)
            owns = True
        else:
            ws = workspace
            ws.settings = options.applied_to(ws.settings)
            ws._engine = SerialEngine.around(ws.engine)
            ws.indexes = LockedIndexManager.replacing(ws.indexes)
            owns = False
        serial = ws.engine
        if isinstance(serial, SerialEngine):
            serial.warm_up()
        return cls(ws, options, owns_workspace=owns)

    @property
    def settings(self) -> Settings:
        return self.ws.settings

    @property
    def reports_dir(self) -> Path:
        return self.options.reports_dir or self.ws.settings.data_dir / "reports"

    def start(self) -> None:
        """Start the background work once the app serves (the retention timer)."""
        if self.retention is not None:
            self.retention.start()

    def close(self) -> None:
        if self.retention is not None:  # first: a run in progress still uses the workspace
            self.retention.close()
        self.video_jobs.close()  # running searches still use the workspace
        self.keys.close()
        if self.owns_workspace:
            self.ws.close()
        else:
            self.ws.indexes.save_all()
