"""Request dependencies: the service of the app, and the user named by the request's API key.

A key is sent as ``Authorization: Bearer flk_...`` or as ``X-API-Key: flk_...``; both
schemes are declared in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from faceledger.access import User
from faceledger.api.service import Service

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (flk_...) issued by `faceledger users issue-key`.",
)
api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same API key, for clients that cannot set Authorization.",
)


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def current_user(
    service: Annotated[Service, Depends(get_service)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> User:
    """The active user owning the request's key (401 problem otherwise)."""
    token = credentials.credentials if credentials is not None else api_key
    return service.keys.authenticate(token)


ServiceDep = Annotated[Service, Depends(get_service)]
UserDep = Annotated[User, Depends(current_user)]
