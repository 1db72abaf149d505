"""Small helpers shared by the route modules: pagination cursors, image responses, form types."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Path, Query
from fastapi.responses import Response

from faceledger.access.purpose import MAX_PURPOSE_CHARS
from faceledger.api.schemas import NAME
from faceledger.errors import InvalidArgument
from faceledger.gallery.images import StoredImage, browser_bytes

CaseRefForm = Annotated[
    str | None,
    Form(max_length=MAX_PURPOSE_CHARS, description="Case or file reference (required)."),
]
"""The case reference form field of every audited upload (search, video, document, clustering)."""

GalleryName = Annotated[str, Path(min_length=1, max_length=200, description="Gallery name.")]
SubjectId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=NAME,
        description="The subject's external id; it may contain `/` (as is or as `%2F`).",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Most items in one page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=40, description="`next_cursor` of the previous page; omit for the first."),
]

IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image (converted to PNG when browsers cannot show its format).",
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}}
            for t in ("image/jpeg", "image/png", "image/webp", "image/gif")
        },
    }
}

_IMAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def image_response(image: StoredImage) -> Response:
    data, media_type = browser_bytes(image)
    headers = {**_IMAGE_HEADERS, "X-Image-SHA256": image.sha256}
    return Response(content=data, media_type=media_type, headers=headers)


def offset_cursor(cursor: str | None) -> int:
    """An offset cursor: decimal digits (opaque to clients)."""
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise InvalidArgument(f"malformed page cursor {cursor!r}")
    return int(cursor)
