"""Errors → ``application/problem+json`` (RFC 9457), at one boundary, with stable codes.

The ``code`` member is the ``code`` attribute of the faceledger error tree (``no_face``,
``permission_denied``...), so clients branch on it, never on the human ``detail``. The HTTP
status comes from :func:`status_for`, the one mapping of error classes to statuses; errors
of the web framework (unknown route, bad method, malformed request) get codes of their own.
Nothing of an unexpected exception reaches the client beyond its code, ``internal_error``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from faceledger import errors as e
from faceledger.errors import AuthenticationFailed

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "urn:faceledger:problem:"

log = logging.getLogger("faceledger.api")

# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_CLASS: tuple[tuple[type[e.FaceLedgerError], int], ...] = (
    (AuthenticationFailed, 401),
    (e.RateLimited, 429),
    (e.PurposeRequired, 422),
    (e.RetentionError, 409),
    (e.PermissionDenied, 403),
    (e.PurposeOutsideAgreement, 403),
    (e.PolicyError, 403),
    (e.TooLarge, 413),
    (e.NoFace, 422),
    (e.AmbiguousFace, 422),
    (e.QualityRejected, 422),
    (e.BadImage, 400),
    (e.BadVideo, 400),
    (e.NoMrz, 422),
    (e.AmbiguousMrz, 422),
    (e.UnreadableMrz, 422),
    (e.InvalidArgument, 400),
    (e.InputError, 400),
    (e.CalibrationError, 422),
    (e.ModelMismatch, 409),
    (e.ModelFileError, 503),
    (e.OcrUnavailable, 503),
    (e.ModelError, 500),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.EncryptionKeyError, 503),
    (e.IntegrityError, 500),
    (e.StoreError, 503),
    (e.ChainBroken, 500),
    (e.Cancelled, 409),
    (e.AuditError, 500),
    (e.FaceLedgerError, 500),
)

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

FRAMEWORK_CODES = {
    400: "invalid_argument",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    401: "unauthenticated",
    403: "permission_denied",
    429: "rate_limited",
}


def status_for(exc: e.FaceLedgerError) -> int:
    """The HTTP status of a faceledger error."""
    for cls, status in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 500  # pragma: no cover - FaceLedgerError is the last row


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def error_response(exc: e.FaceLedgerError, instance: str | None = None) -> JSONResponse:
    status = status_for(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, e.QualityRejected):
        extra["reasons"] = list(exc.reasons)
    if isinstance(exc, e.ChainBroken):
        extra["position"] = exc.position
    headers = {"WWW-Authenticate": 'Bearer realm="faceledger"'} if status == 401 else None
    if isinstance(exc, e.RateLimited):
        extra["retry_after"] = retry_after(exc.retry_after_s)
        headers = {"Retry-After": str(extra["retry_after"])}
    detail = exc.message
    if status >= 500:
        log.error("%s on %s: %s", exc.code, instance, exc.message)
        if isinstance(exc, e.StoreError):
            detail = "the database is unavailable or busy; try again"
    return problem(status, exc.code, detail, instance=instance, headers=headers, **extra)


def retry_after(seconds: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (Starlette names only
    the first matching route's)."""
    found = []
    for method in HTTP_METHODS:
        scope = {**request.scope, "type": "http", "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            found.append(method)
    if "GET" in found and "HEAD" not in found:
        found.insert(1, "HEAD")
    return found


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    async def on_faceledger(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.FaceLedgerError)
        return error_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        return problem(
            422,
            e.InvalidArgument.code,
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            instance=request.url.path,
            errors=errors,
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = FRAMEWORK_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(exc.status_code, code, detail, instance=request.url.path, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            500, "internal_error", "an unexpected error occurred", instance=request.url.path
        )

    app.add_exception_handler(e.FaceLedgerError, on_faceledger)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
