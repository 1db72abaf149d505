"""The service's retention timer: galleries' retention periods enforced without anyone asking.

A gallery with a period of hours (a temporary gallery built from one flight's manifest) must
be empty hours later whether or not an operator remembers ``faceledger retention apply``. So
the service applies the periods itself, every ``ServiceOptions.retention_interval_s`` seconds
(the first run shortly after start), in one daemon thread, as
:func:`~faceledger.gallery.service_actor` (recorded as ``service:retention``).

A run is :func:`faceledger.usecases.apply_retention`, so a run that erases something writes
what ``retention apply`` writes: an erasure receipt per subject and a ``retention_purge``
entry listing the receipts and the kept probe images deleted. A run that finds nothing writes
nothing (``ApplyRetention.quiet``). A run that fails is logged and the next one tries again;
the thread goes on. Each run also records the sharing agreements that expired since the last
(``agreement_expire`` entries; an agreement stops applying at its expiry regardless). Runs
never overlap, neither with each other (one thread) nor with
``POST /retention/apply`` (both hold :attr:`RetentionTimer.lock`). As with that endpoint, the
database files are not compacted while the service runs: SQLite overwrites deleted rows in
place (``secure_delete``), and the CLI's ``retention apply`` also reclaims the space.
"""

from __future__ import annotations

import logging
import math
import threading

from faceledger.errors import InvalidArgument
from faceledger.gallery import Workspace, service_actor
from faceledger.usecases import ApplyRetention, RetentionRun, apply_retention
from faceledger.usecases.organisations import record_expired_agreements

log = logging.getLogger("faceledger.api.retention")

JOIN_TIMEOUT_S = 30.0
"""How long closing waits for a run in progress before leaving the (daemon) thread to it."""


def check_schedule(interval_s: float | None, first_run_s: float) -> None:
    """Refuse a schedule no timer can keep (negative, NaN or infinite seconds); an interval
    of None or 0 is no timer at all."""
    for name, value in (("interval_s", interval_s or 0.0), ("first_run_s", first_run_s)):
        if isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"retention timer: {name} must be a finite number >= 0")


class RetentionTimer:
    """Applies the retention periods of ``ws`` every ``interval_s`` seconds once started,
    the first time ``first_run_s`` seconds after :meth:`start`."""

    def __init__(
        self,
        ws: Workspace,
        *,
        interval_s: float,
        first_run_s: float,
        lock: threading.Lock | None = None,
    ) -> None:
        check_schedule(interval_s, first_run_s)
        if interval_s == 0:
            raise InvalidArgument("retention timer: interval_s must be positive")
        self.ws = ws
        self.interval_s = interval_s
        self.first_run_s = first_run_s
        self.actor = service_actor("retention")
        self.lock = lock or threading.Lock()
        """Held by each run; share it with whatever else applies retention in this process."""
        self.runs = 0
        """Runs completed (with or without anything to remove)."""
        self.failures = 0
        """Runs that raised (logged; the next run tries again)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive (started and not yet stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once; a closed timer stays closed)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._loop, name="faceledger-retention", daemon=True)
        self._thread.start()

    def run_once(self) -> RetentionRun | None:
        """One run now (waiting for one in progress to end); None when it failed."""
        with self.lock:
            try:
                done = apply_retention(self.ws, self.actor, ApplyRetention(quiet=True))
                expired = record_expired_agreements(self.ws, self.actor)
            except Exception:  # the thread must outlive a bad run; the next one retries
                self.failures += 1
                log.exception("retention run failed; the next one retries")
                return None
            self.runs += 1
        if done.receipts or done.probes_deleted or done.cluster_sets_deleted:
            log.info(
                "retention: %d subject(s) erased, %d kept probe image(s) deleted, "
                "%d cluster set(s) deleted",
                len(done.receipts),
                len(done.probes_deleted),
                len(done.cluster_sets_deleted),
            )
        if expired:
            log.info("sharing agreements expired: %s", ", ".join(expired))
        for failure in done.failed:
            log.warning("retention: not erased %s (retried by the next run)", failure)
        return done

    def close(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Stop: no further run starts; wait up to ``timeout_s`` for one in progress."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("retention run still in progress after %.0f s; not waiting", timeout_s)

    def _loop(self) -> None:
        delay = self.first_run_s
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.interval_s
