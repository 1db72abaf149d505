"""Request size limits, enforced before a body is parsed, and reading uploads into memory.

The middleware refuses a request whose ``Content-Length`` is over the limit at once, and cuts
off a body sent without one (chunked) as soon as it passes the limit; both answer 413 with a
problem document. Uploads are then read as bytes: the service never opens a path or URL a
client sends, it only ever decodes the bytes of the upload itself.
"""

from __future__ import annotations

import json
from typing import Any

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
