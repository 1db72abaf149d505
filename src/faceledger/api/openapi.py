"""The OpenAPI document: FastAPI's, plus the problem responses every operation can give.

Errors are ``application/problem+json`` (see :mod:`.problems`); FastAPI would document its
own validation body instead, so every operation's error responses are replaced here with the
one ``Problem`` schema, and the security schemes apply to every operation but ``/health``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from faceledger.api.problems import PROBLEM_TYPE, TITLES
from faceledger.api.schemas import Problem

PUBLIC = {"/api/v1/health"}
_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
_PUBLIC_ERRORS = (500, 503)

DESCRIPTION = """\
Face detection, 1:1 verification and purpose-bound 1:N search over galleries, with human
review of every lead and a hash-chained audit log of every use.

**Authentication**: an API key, as `Authorization: Bearer flk_...` or `X-API-Key: flk_...`.
What a key may do follows its user's roles and per-gallery grants.

**Errors** are `application/problem+json` documents whose `code` is stable (`no_face`,
`purpose_required`, `permission_denied`, ...).

**Scores** always come with their estimated false-match rate (`fmr`) from the model's
calibration; search results are leads for a reviewer, never identifications.
"""


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or method not in {"get", "post", "put", "delete", "patch"}:
                continue
            responses = op.setdefault("responses", {})
            wanted = _PUBLIC_ERRORS if path in PUBLIC else _ERRORS
            for status in wanted:
                responses[str(status)] = _problem_response(status)
            if path in PUBLIC:
                op.pop("security", None)
    app.openapi_schema = doc
    return doc
