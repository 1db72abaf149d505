"""The app factory: ``create_app(settings)`` → a FastAPI app serving the API and the review UI.

One app holds one :class:`~faceledger.api.service.Service` (workspace, key cache, image
store). The API lives under ``/api/v1``, its OpenAPI document at ``/api/v1/openapi.json``
and an interactive page for it at ``/docs`` (``api.docs``, offline); the review UI (static
files, no third-party assets) under ``/ui/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faceledger.api import problems
from faceledger.api.docs import docs_router
from faceledger.api.limits import BodyLimit
from faceledger.api.openapi import build_openapi
from faceledger.api.routes import (
    admin,
    audit,
    clusters,
    documents,
    faces,
    faces_views,
    galleries,
    orgs,
    searches,
    system,
    videos,
)
from faceledger.api.service import Service, ServiceOptions
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.gallery import Workspace
from faceledger.version import __version__

API_PREFIX = "/api/v1"
WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' blob: data:; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Headers every answer carries; the UI's pages also get a strict CSP (no inline script,
    nothing from elsewhere)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        is_ui = path.startswith("/ui") or path == "/docs" or path.startswith("/docs/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if is_ui:
                    extra.append((b"content-security-policy", UI_CSP.encode()))
                    extra.append((b"cache-control", b"no-cache"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


VIDEO_UPLOAD_PATH = f"{API_PREFIX}/video-searches"
FORM_OVERHEAD_BYTES = 1024 * 1024
"""Room for a video upload's other form fields and multipart framing."""


class BodyLimits:
    """:class:`BodyLimit` with a limit of its own for the video upload path (a video is
    larger than any image the other operations take)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_paths: frozenset[str],
        upload_max_bytes: int,
    ) -> None:
        self.default = BodyLimit(app, max_bytes)
        self.uploads = BodyLimit(app, max(max_bytes, upload_max_bytes))
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).rstrip("/")
        chosen = self.uploads if path in self.upload_paths else self.default
        await chosen(scope, receive, send)


def create_app(
    settings: Settings,
    workspace: Workspace | None = None,
    *,
    options: ServiceOptions | None = None,
) -> FastAPI:
    """The service for ``settings``' workspace (opened now, closed on shutdown), or for
    ``workspace`` (opened with these same settings), which the app then makes thread-safe in
    place and leaves open."""
    if workspace is not None and workspace.settings != settings:
        raise InvalidArgument("create_app() was given a workspace opened with other settings")
    opts = options or ServiceOptions()
    service = Service.open(settings, workspace, opts)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="faceledger",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.service = service
    problems.install(app)
    for module in (
        system,
        admin,
        orgs,
        galleries,
        faces,
        documents,
        searches,
        faces_views,
        videos,
        clusters,
        audit,
    ):
        app.include_router(module.router, prefix=API_PREFIX)

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(docs_router(f"{API_PREFIX}/openapi.json"))
    if opts.web_ui:
        app.mount("/ui", StaticFiles(directory=WEB_DIR, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    app.add_middleware(
        BodyLimits,
        max_bytes=opts.max_request_bytes,
        upload_paths=frozenset({VIDEO_UPLOAD_PATH}),
        upload_max_bytes=service.video_limits.max_bytes + FORM_OVERHEAD_BYTES,
    )
    app.add_middleware(SecurityHeaders)
    return app
