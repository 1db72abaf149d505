"""Request limits: body sizes, enforced before a body is parsed, reading uploads into memory,
and the limits on failed authentications.

The middleware refuses a request whose ``Content-Length`` is over the limit at once, and cuts
off a body sent without one (chunked) as soon as it passes the limit; both answer 413 with a
problem document. Uploads are then read as bytes: the service never opens a path or URL a
client sends, it only ever decodes the bytes of the upload itself.

:class:`FailureLimiter` counts failed authentications per name (a client address, a key id)
and refuses a name that failed too often for a while, so that an unauthenticated client
cannot make the service spend argon2 work without bound (:mod:`faceledger.api.keys`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from fastapi import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceledger.api.problems import PROBLEM_TYPE, TITLES, TYPE_BASE
from faceledger.errors import InvalidArgument, TooLarge


class BodyLimit:
    """ASGI middleware: 413 for request bodies over ``max_bytes``.

    A body up to twice the limit is read and discarded before answering, so the client,
    still sending, gets the answer rather than a reset connection; past that the answer
    goes out at once and the connection is closed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _drain(self, receive: Receive, seen: int) -> None:
        more = True
        while more and seen <= 2 * self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            more = bool(message.get("more_body", False))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= 2 * self.max_bytes:
                await self._drain(receive, 0)
            await _send_413(send, self.max_bytes, scope.get("path", ""))
            return
        seen = 0

        async def limited_receive() -> Message:
            # raised as an HTTP exception so the framework turns it into a 413 problem even
            # when it surfaces while a form is being parsed
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, seen)
                    raise HTTPException(413, detail=_too_large(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit:,} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int, path: str) -> None:
    body = json.dumps(
        {
            "type": TYPE_BASE + TooLarge.code,
            "title": TITLES[413],
            "status": 413,
            "code": TooLarge.code,
            "detail": _too_large(limit),
            "instance": path,
        }
    ).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_upload(upload: UploadFile, max_bytes: int, what: str = "image") -> bytes:
    """The bytes of one uploaded file; :class:`TooLarge` past ``max_bytes``."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"the {what} {upload.filename or ''!s} is larger than {max_bytes:,} bytes")
    return data


def filename_of(upload: UploadFile) -> str:
    """The client's file name, for reports only (never used to open anything)."""
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:200]


def json_field(raw: str | None, what: str) -> Any:
    if raw is None or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"{what} must be JSON: {exc}") from None


# -- failed authentications ------------------------------------------------------------------


def default_auth_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class AuthLimits:
    """How much argon2 work unauthenticated clients may cause (see :mod:`faceledger.api.keys`).

    A client address, or a key id, with ``max_failures`` failed authentications within
    ``window_s`` is answered 429 for ``lockout_s`` without any check (``max_failures`` 0: no
    such limit). At most ``workers`` keys are verified at once and ``queue`` more wait; past
    that a key not verified before is answered 429.
    """

    max_failures: int = 10
    window_s: float = 60.0
    lockout_s: float = 60.0
    workers: int = field(default_factory=default_auth_workers)
    """One argon2 check with its default parameters already keeps ~1.5 cores busy (four
    lanes): by default a thread for every two cores, one at least and four at most."""
    queue: int = 8
    tracked: int = 10_000
    """Most client addresses (and, apart, key ids) remembered; the least recent are forgotten."""
    refusal_delay_s: float = 1.0
    """A 429 is answered after this long (the connection waits, no thread does), so that a
    client that ignores Retry-After cannot make the service answer refusals back to back."""


@dataclass
class _Failures:
    since: float
    count: int = 0
    blocked_until: float = 0.0


class FailureLimiter:
    """Failures per name within a window, and the names refused for a while (thread-safe;
    at most ``max_entries`` names, least recently failed forgotten first)."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        lockout_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window_s
        self._lockout = lockout_s
        self._max_entries = max(1, max_entries)
        self._clock = clock
        self._entries: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, limits: AuthLimits, clock: Callable[[], float] = time.monotonic) -> Self:
        return cls(
            limits.max_failures,
            limits.window_s,
            limits.lockout_s,
            max_entries=limits.tracked,
            clock=clock,
        )

    def retry_after(self, name: str | None) -> float:
        """Seconds ``name`` is still refused for; 0 when it is not."""
        if name is None or self._max_failures <= 0:
            return 0.0
        with self._lock:
            entry = self._entries.get(name)
            left = 0.0 if entry is None else entry.blocked_until - self._clock()
        return max(0.0, left)

    def failed(self, name: str | None) -> None:
        """Count one failure of ``name``; the one that reaches the limit starts the lockout."""
        if name is None or self._max_failures <= 0:
            return
        now = self._clock()
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or now - entry.since > self._window:
                blocked = 0.0 if entry is None else entry.blocked_until
                entry = _Failures(since=now, blocked_until=blocked)
                self._entries[name] = entry
            self._entries.move_to_end(name)
            entry.count += 1
            if entry.count >= self._max_failures:
                entry.blocked_until = now + self._lockout
                entry.since, entry.count = now, 0
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def forgive(self, name: str | None) -> None:
        """Take back one failure counted in advance for an attempt that then succeeded (a
        lockout already started stays)."""
        if name is None or self._max_failures <= 0:
            return
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry.count > 0:
                entry.count -= 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
