"""Users, API keys and gallery grants (administrators; a key's owner may revoke it).

Every change is authorised and audited by :mod:`faceledger.access`; the key cache is cleared
after each, so a revoked key or a withdrawn grant stops working at once on this service.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from faceledger import usecases as uc
from faceledger.access import Operation, authorize
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep

router = APIRouter(tags=["users and grants"])

UserId = Path(min_length=1, max_length=64)
KeyId = Path(min_length=1, max_length=64)
GalleryName = Path(min_length=1, max_length=200)


@router.get("/users", summary="Every user with roles and grants")
def list_users(svc: ServiceDep, user: UserDep) -> list[s.UserOut]:
    """The accounts the caller manages: an administrator's, those of their organisation; the
    operator's, the administrators and operators of every organisation."""
    return [convert.user(u) for u in svc.ws.access.managed_users(user)]


@router.post("/users", status_code=201, summary="Add a user")
def create_user(body: s.UserIn, svc: ServiceDep, user: UserDep) -> s.UserOut:
    """In ``org`` (default: the caller's). An administrator adds users to their own
    organisation; the operator adds the administrators (and operators) of any."""
    created = svc.ws.access.create_user(
        body.id, body.roles, by=user, display_name=body.display_name, org=body.org
    )
    return convert.user(created)


@router.post("/users/{user_id}/deactivate", summary="Refuse every further request of a user")
def deactivate_user(svc: ServiceDep, user: UserDep, user_id: str = UserId) -> s.UserOut:
    changed = svc.ws.access.deactivate(user_id, by=user)
    svc.keys.clear()
    return convert.user(changed)


@router.post("/users/{user_id}/reactivate", summary="Let a deactivated user in again")
def reactivate_user(svc: ServiceDep, user: UserDep, user_id: str = UserId) -> s.UserOut:
    changed = svc.ws.access.reactivate(user_id, by=user)
    svc.keys.clear()
    return convert.user(changed)


@router.post("/users/{user_id}/keys", status_code=201, summary="Issue an API key")
def issue_key(
    body: s.KeyIn, svc: ServiceDep, user: UserDep, user_id: str = UserId
) -> s.IssuedKeyOut:
    """The token is in this answer only; the service keeps just its argon2 hash."""
    issued = svc.ws.access.issue_api_key(user_id, by=user, label=body.label)
    return s.IssuedKeyOut(key_id=issued.key_id, user_id=issued.user_id, token=issued.token)


@router.get("/users/{user_id}/keys", summary="A user's API keys (never the secrets)")
def list_keys(svc: ServiceDep, user: UserDep, user_id: str = UserId) -> list[s.KeyInfoOut]:
    return [
        s.KeyInfoOut(
            key_id=k.key_id,
            user_id=k.user_id,
            label=k.label,
            created_at=convert.iso(k.created_at),
            revoked_at=None if k.revoked_at is None else convert.iso(k.revoked_at),
        )
        for k in svc.ws.access.keys_of(user_id, by=user)
    ]


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key")
def revoke_key(svc: ServiceDep, user: UserDep, key_id: str = KeyId) -> Response:
    svc.ws.access.revoke_api_key(key_id, by=user)
    svc.keys.clear()
    return Response(status_code=204)


@router.get("/galleries/{gallery}/grants", summary="Who holds which grant on a gallery")
def list_grants(svc: ServiceDep, user: UserDep, gallery: str = GalleryName) -> list[s.GrantOut]:
    return [
        s.GrantOut(user_id=uid, gallery=gallery, level=level)
        for uid, level in sorted(uc.list_grants(svc.ws, user, gallery).items())
    ]


@router.put("/galleries/{gallery}/grants/{user_id}", summary="Grant a user a level on a gallery")
def put_grant(
    body: s.GrantIn,
    svc: ServiceDep,
    user: UserDep,
    gallery: str = GalleryName,
    user_id: str = UserId,
) -> s.GrantOut:
    authorize(user, Operation.GRANT_MANAGE, gallery)
    g = svc.ws.store.get_gallery_by_name(gallery)
    svc.ws.access.grant(user_id, g.name, body.level, by=user)
    svc.keys.clear()
    return s.GrantOut(user_id=user_id, gallery=g.name, level=body.level)


@router.delete("/galleries/{gallery}/grants/{user_id}", status_code=204, summary="Withdraw a grant")
def delete_grant(
    svc: ServiceDep, user: UserDep, gallery: str = GalleryName, user_id: str = UserId
) -> Response:
    authorize(user, Operation.GRANT_MANAGE, gallery)
    g = svc.ws.store.get_gallery_by_name(gallery)
    svc.ws.access.revoke(user_id, g.name, by=user)
    svc.keys.clear()
    return Response(status_code=204)
