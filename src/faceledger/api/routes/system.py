"""Health (no key needed) and the caller's own identity."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.service import Service
from faceledger.store import translate_errors
from faceledger.version import __version__

router = APIRouter(tags=["system"])


def _health(svc: Service) -> s.Health:
    with translate_errors("health check"), svc.ws.db.connect() as conn:
        conn.execute(sa.select(1))
        conn.rollback()
    return s.Health(
        status="ok",
        version=__version__,
        model_id=svc.ws.engine.card.id,
        database=svc.ws.db.dialect.name,
        users=bool(svc.ws.access.users()),
    )


@router.get("/health", summary="Is the service up and its database reachable?")
async def health(svc: ServiceDep) -> s.Health:
    """Answers without a key; 503 when the database cannot be reached."""
    return await run_in_threadpool(_health, svc)


@router.get("/me", summary="The user of the API key sent")
def me(user: UserDep) -> s.UserOut:
    return convert.user(user)
