"""API-key authentication with a short-lived, bounded cache of verified keys.

Checking a key costs one argon2 verification (~50 ms, on purpose). A client sending many
requests would pay it on each, so a verified key is remembered for ``ttl_s`` seconds under
the SHA-256 of the token (the token itself is not kept). Revoking a key, deactivating a user
or changing roles or grants therefore takes effect within ``ttl_s`` (5 s by default); the
service clears the whole cache at once when such a change goes through it. Failures are not
cached: each costs a full verification, which also slows guessing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from faceledger.access import AccessControl, User
from faceledger.errors import AuthenticationFailed, PermissionDenied


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class KeyCache:
    """Token → user, for at most ``ttl_s`` seconds and ``max_entries`` tokens (LRU)."""

    def __init__(
        self,
        access: AccessControl,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._access = access
        self._ttl = ttl_s
        self._max = max(1, max_entries)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, User]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def authenticate(self, token: str | None) -> User:
        """The user owning ``token``; :class:`AuthenticationFailed` otherwise."""
        if not token:
            raise AuthenticationFailed("an API key is required (Authorization: Bearer flk_...)")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        with self._lock:
            found = self._entries.get(digest)
            if found is not None and found[0] > now:
                self._entries.move_to_end(digest)
                self.stats.hits += 1
                return found[1]
            if found is not None:
                del self._entries[digest]
            self.stats.misses += 1
        try:
            user = self._access.authenticate(token)
        except PermissionDenied:
            raise AuthenticationFailed("invalid or revoked API key") from None
        if self._ttl > 0:
            with self._lock:
                self._entries[digest] = (self._clock() + self._ttl, user)
                self._entries.move_to_end(digest)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
                    self.stats.evictions += 1
        return user

    def clear(self) -> None:
        """Forget every cached key (after a change of users, keys, roles or grants)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
