"""API-key authentication that bounds the work an unauthenticated client can cause.

Checking a key costs one argon2 verification (0.1-0.5 s of CPU, on purpose). So that clients
sending bad keys cannot take the service's CPU or threads from everyone else:

- a token not of the form of a key (``flk_<12 hex>_<43 URL-safe characters>``) is refused at
  once (401), without hashing and without the database, and is not counted below: it costs
  no more than any other request;
- a verified key is remembered for ``ttl_s`` seconds under the SHA-256 of the token (the
  token itself is not kept); such a cache hit waits for nothing else. Revoking a key,
  deactivating a user or changing roles or grants therefore takes effect within ``ttl_s``
  (5 s by default); the service clears the whole cache at once when such a change goes
  through it;
- verifications run on a small pool of threads of their own (:class:`VerifierPool`, never
  the request thread pool), ``AuthLimits.workers`` at a time with at most
  ``AuthLimits.queue`` waiting; past that, a request is answered 429. Requests carrying
  the same token share one verification;
- a client address or a key id with ``AuthLimits.max_failures`` failures within
  ``window_s`` is answered 429 for ``lockout_s``, without any check (:class:`FailureLimiter`).
  A verification counts as a failure from the moment it is queued and is taken back if the
  key verifies, so concurrent requests cannot slip past the limit; requests that share a
  verification count once. On the event loop every 429 is answered after
  ``AuthLimits.refusal_delay_s``, so a client ignoring Retry-After cannot loop on refusals.

A token that has verified before (the digests of the last ``AuthLimits.tracked`` are kept) is
exempt from those limits, has room of its own in the pool's queue and is verified before any
other waiting key, so a user who shares an address with a guesser, or whose key id a guesser
targets, keeps working; it is still verified again, so a revoked key loses the exemption at
its first failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

from faceledger.access import AccessControl, User
from faceledger.access.control import split_token
from faceledger.api.limits import AuthLimits, FailureLimiter
from faceledger.errors import AuthenticationFailed, PermissionDenied, RateLimited

BUSY_RETRY_S = 1.0
"""The ``Retry-After`` of a request refused because the verification pool is full."""

_Job = tuple[Callable[[], User], Future[User]]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    malformed: int = 0
    """Tokens refused by the format check alone (no argon2)."""
    throttled: int = 0
    """Requests refused because their client address or key id is locked out."""
    busy: int = 0
    """Requests refused because the verification pool was full."""
    shared: int = 0
    """Requests that waited for a verification of the same token already under way."""
    verifications: int = 0
    """Verifications run (each one argon2 check, or a dummy one for an unknown key id)."""
    failures: int = 0


class VerifierPool:
    """Runs verifications on ``workers`` threads of its own, started on first use.

    At most ``queue`` more may wait, and ``reserve`` more of those marked trusted; past that
    :meth:`submit` raises :class:`RateLimited` at once rather than queueing without bound.
    Trusted jobs (keys that verified before) are taken before any other waiting job.
    """

    def __init__(self, workers: int, queue: int, *, reserve: int | None = None) -> None:
        self._workers = max(1, workers)
        self._capacity = self._workers + max(0, queue)
        self._reserve = self._workers if reserve is None else max(0, reserve)
        self._waiting: tuple[deque[_Job], deque[_Job]] = (deque(), deque())  # trusted first
        self._pending = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._cond = threading.Condition()

    @property
    def pending(self) -> int:
        """Verifications running or waiting."""
        with self._cond:
            return self._pending

    def submit(self, fn: Callable[[], User], *, trusted: bool = False) -> Future[User]:
        future: Future[User] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the verification pool is closed")
            room = self._capacity + (self._reserve if trusted else 0)
            if self._pending >= room:
                raise RateLimited(
                    "too many API keys are being checked at once; try again shortly",
                    retry_after_s=BUSY_RETRY_S,
                )
            self._pending += 1
            self._waiting[0 if trusted else 1].append((fn, future))
            if len(self._threads) < self._workers:
                self._start_thread()
            self._cond.notify()
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"faceledger-auth-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _next(self) -> _Job | None:
        with self._cond:
            while not self._closed and not (self._waiting[0] or self._waiting[1]):
                self._cond.wait()
            if self._closed:
                return None
            return (self._waiting[0] or self._waiting[1]).popleft()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            fn, future = job
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
            finally:
                with self._cond:
                    self._pending -= 1

    def close(self) -> None:
        """Stop the threads; jobs still waiting are cancelled."""
        with self._cond:
            self._closed = True
            dropped = [*self._waiting[0], *self._waiting[1]]
            self._waiting[0].clear()
            self._waiting[1].clear()
            self._pending -= len(dropped)
            self._cond.notify_all()
        for _, future in dropped:
            future.cancel()


class KeyCache:
    """Token → user, for at most ``ttl_s`` seconds and ``max_entries`` tokens (LRU), with the
    pre-check, verification pool and failure limits of ``limits``."""

    def __init__(
        self,
        access: AccessControl,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 1024,
        limits: AuthLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        """``epoch``: the store's count of access changes (``AuditLog.access_epoch``), read
        on every request; when it moves (a change by this process or any other, e.g. another
        replica of the service) every remembered key is forgotten."""
        limits = limits or AuthLimits()
        self._epoch = epoch
        self._seen_epoch: int | None = None
        self._access = access
        self._ttl = ttl_s
        self._max = max(1, max_entries)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, User]] = OrderedDict()
        self._good: OrderedDict[str, None] = OrderedDict()
        self._max_good = max(1, limits.tracked)
        self._running: dict[str, Future[User]] = {}
        self._generation = 0
        self._lock = threading.RLock()
        self._pool = VerifierPool(limits.workers, limits.queue)
        self._refusal_delay = max(0.0, limits.refusal_delay_s)
        self.clients = FailureLimiter.of(limits, clock)
        self.key_ids = FailureLimiter.of(limits, clock)
        self.stats = CacheStats()

    @property
    def pending(self) -> int:
        """Verifications running or waiting on the pool."""
        return self._pool.pending

    def authenticate(self, token: str | None, client: str | None = None) -> User:
        """The user owning ``token``; :class:`AuthenticationFailed` otherwise, or
        :class:`RateLimited`. Blocks while the key is verified (on the pool)."""
        started = self._start(token, client)
        return started.result() if isinstance(started, Future) else started

    async def authenticate_async(self, token: str | None, client: str | None = None) -> User:
        """:meth:`authenticate` for the event loop: the checks run inline (they are cheap),
        the verification on the pool, which the loop awaits without blocking. A refusal
        (429) is answered after ``AuthLimits.refusal_delay_s``, holding nothing but the
        connection, so a client ignoring Retry-After gets at most one a second from it."""
        try:
            started = self._start(token, client)
        except RateLimited:
            await asyncio.sleep(self._refusal_delay)
            raise
        if isinstance(started, Future):
            # shielded: a request that goes away must not cancel one that others share
            return await asyncio.shield(asyncio.wrap_future(started))
        return started

    def _start(self, token: str | None, client: str | None) -> User | Future[User]:
        if not token:
            raise AuthenticationFailed("an API key is required (Authorization: Bearer flk_...)")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        current = None if self._epoch is None else self._epoch()
        with self._lock:
            if current != self._seen_epoch:
                self._forget()
                self._seen_epoch = current
            user = self._cached(digest)
            if user is not None:
                return user
            trusted = digest in self._good
        parts = split_token(token)
        if parts is None:
            with self._lock:
                self.stats.malformed += 1
            raise AuthenticationFailed("not an API key (flk_<key id>_<secret>)")
        return self._submit(digest, token, parts[0], client, trusted)

    def _submit(
        self, digest: str, token: str, key_id: str, client: str | None, trusted: bool
    ) -> Future[User]:
        """A verification of ``token`` on the pool, or the one already under way.

        The attempt counts as a failure of its client and key id from the start, and is taken
        back when the key verifies; the check and the count happen under one lock, so
        concurrent requests cannot slip past the limit."""
        with self._lock:
            if not trusted:
                self._refuse_if_limited(client, key_id)
            running = self._running.get(digest)
            if running is not None:
                self.stats.shared += 1
                return running
            self.clients.failed(client)
            self.key_ids.failed(key_id)
            verify = partial(self._verify, digest, token, key_id, client, self._generation)
            try:
                future = self._pool.submit(verify, trusted=trusted)
            except RateLimited:
                self.stats.busy += 1
                self.clients.forgive(client)
                self.key_ids.forgive(key_id)
                raise
            self._running[digest] = future
            future.add_done_callback(partial(self._finished, digest))
            return future

    def _cached(self, digest: str) -> User | None:
        now = self._clock()
        found = self._entries.get(digest)
        if found is not None and found[0] > now:
            self._entries.move_to_end(digest)
            self.stats.hits += 1
            return found[1]
        if found is not None:
            del self._entries[digest]
        self.stats.misses += 1
        return None

    def _refuse_if_limited(self, client: str | None, key_id: str) -> None:
        wait = max(self.clients.retry_after(client), self.key_ids.retry_after(key_id))
        if wait > 0:
            with self._lock:
                self.stats.throttled += 1
            raise RateLimited(
                f"too many failed authentications; try again in {math.ceil(wait)} s",
                retry_after_s=wait,
            )

    def _verify(
        self, digest: str, token: str, key_id: str, client: str | None, generation: int
    ) -> User:
        """On the pool: one verification, and its outcome recorded."""
        with self._lock:
            self.stats.verifications += 1
        try:
            user = self._access.authenticate(token)
        except PermissionDenied:
            with self._lock:
                self.stats.failures += 1
                self._good.pop(digest, None)
            raise AuthenticationFailed("invalid or revoked API key") from None
        self.clients.forgive(client)
        self.key_ids.forgive(key_id)
        with self._lock:
            self._good[digest] = None
            self._good.move_to_end(digest)
            while len(self._good) > self._max_good:
                self._good.popitem(last=False)
            if self._ttl > 0 and generation == self._generation:
                self._entries[digest] = (self._clock() + self._ttl, user)
                self._entries.move_to_end(digest)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
                    self.stats.evictions += 1
        return user

    def _finished(self, digest: str, future: Future[User]) -> None:
        with self._lock:
            if self._running.get(digest) is future:
                del self._running[digest]

    def clear(self) -> None:
        """Forget every cached key (after a change of users, keys, roles or grants); a
        verification under way is not cached when it ends."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        self._entries.clear()
        self._running.clear()
        self._generation += 1

    def close(self) -> None:
        """Stop the verification pool (the service is shutting down)."""
        self._pool.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
