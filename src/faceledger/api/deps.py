"""Request dependencies: the service of the app, and the user named by the request's API key.

A key is sent as ``Authorization: Bearer flk_...`` or as ``X-API-Key: flk_...``; both
schemes are declared in the OpenAPI document. The user dependency runs on the event loop: its
checks are cheap, and the argon2 verification of a key not in the cache runs on the key
cache's own bounded pool (:mod:`faceledger.api.keys`), so bad keys never hold the threads
that serve requests.
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


def client_address(request: Request) -> str | None:
    """The client's address as the server reports it (uvicorn takes it from
    ``X-Forwarded-For`` only when the peer is a trusted proxy, by default loopback)."""
    return request.client.host if request.client is not None else None


async def current_user(
    request: Request,
    service: Annotated[Service, Depends(get_service)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> User:
    """The active user owning the request's key (401 problem otherwise; 429 while the client
    or the key id is locked out after failures, or the verification pool is full)."""
    token = credentials.credentials if credentials is not None else api_key
    return await service.keys.authenticate_async(token, client_address(request))


ServiceDep = Annotated[Service, Depends(get_service)]
UserDep = Annotated[User, Depends(current_user)]
