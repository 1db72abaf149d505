"""``/docs``: an interactive API page (Swagger UI) that works with no network.

Swagger UI's files come from the ``fastapi-swagger`` wheel (MIT, Swagger UI 5.x, which renders
OpenAPI 3.1), served from this process; the page's start-up script is a file too, so the page
runs under the same strict content security policy as the review UI (no inline script,
nothing from elsewhere). ``/openapi.json`` redirects to the document at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from faceledger.errors import FaceLedgerError

ASSETS = "fastapi_swagger.resources"
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>faceledger API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" href="/docs/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi_url}"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = """"use strict";
window.addEventListener("load", function () {
  var el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: el.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    displayRequestDuration: true,
    filter: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
FILES = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "application/javascript"),
    "swagger-ui.css": ("swagger-ui.css", "text/css"),
    "favicon.png": ("favicon-32x32.png", "image/png"),
}


@cache
def _asset(name: str) -> bytes:
    try:
        return (resources.files(ASSETS) / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise FaceLedgerError(f"Swagger UI asset {name} missing: reinstall faceledger") from exc


def docs_router(openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.format(openapi_url=openapi_url))

    @router.get("/docs/init.js")
    def init() -> Response:
        return Response(INIT, media_type="application/javascript")

    @router.get("/docs/{name}")
    def asset(name: str) -> Response:
        if name not in FILES:
            return Response(status_code=404)
        filename, media_type = FILES[name]
        return Response(
            _asset(filename),
            media_type=media_type,
            headers={"cache-control": "public, max-age=86400"},
        )

    @router.get("/openapi.json")
    def openapi_redirect() -> RedirectResponse:
        return RedirectResponse(openapi_url)

    return router
