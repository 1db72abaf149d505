"""Galleries: create, list, show and delete, authorised and audited.

Every gallery is owned by the organisation of whoever created it. Listing follows least
privilege: an administrator sees the galleries their organisation owns or has shared with it,
anyone else only the galleries they hold an effective grant on (a gallery's name can itself
be sensitive). Only the owner's administrators manage a gallery.
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access import (
    DEFAULT_ORG,
    GrantLevel,
    Operation,
    Role,
    User,
    authorize,
    is_allowed,
)
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import PermissionDenied
from faceledger.gallery.indexes import SyncReport
from faceledger.gallery.workspace import Workspace
from faceledger.store import Counts, Gallery, LegalBasis, Subject


@dataclass(frozen=True)
class CreateGallery:
    name: str
    legal_basis: LegalBasis | str
    description: str = ""
    retention_days: int | None = None
    retention_hours: int | None = None
    """A period in hours instead of days, for galleries that must be gone within the day (a
    gallery built for one flight); giving both is an :class:`InvalidArgument`."""
    org: str | None = None
    """The owning organisation: the creator's own; only the deployment itself may name one."""


@dataclass(frozen=True)
class ShowGallery:
    name: str
    subjects: int = 0
    """How many of its first subjects to list; none for a user without ``list_subjects`` on
    it (an administrator sees the counts, not the names)."""
    check_index: bool = False
    """Compare the gallery's vector index with the store (and repair it)."""


@dataclass(frozen=True)
class DeleteGallery:
    name: str
    reason: str
    compact: bool = False
    """Reclaim the deleted bytes from the database file now (slow on a large database)."""


@dataclass(frozen=True)
class GalleryInfo:
    gallery: Gallery
    counts: Counts
    first_subjects: tuple[Subject, ...] = ()
    index: SyncReport | None = None
    """The index checked against the store (``ShowGallery.check_index``)."""
    owner_org: str = DEFAULT_ORG
    """The organisation owning the gallery."""


def can_see(ws: Workspace, actor: User, gallery: str) -> bool:
    """Whether ``actor`` may know ``gallery`` exists: an administrator of its owner or of an
    organisation it is shared with now, or anyone with an effective grant on it."""
    if not actor.active:
        return False
    if actor.level_on(gallery) is not None:
        return True
    if Role.ADMIN not in actor.roles:
        return False
    if actor.org is None or ws.orgs.owner_of(gallery) == actor.org:
        return True
    return ws.orgs.live_agreement(actor.org, gallery) is not None


def require_owner(ws: Workspace, actor: User, gallery: str, what: str) -> str:
    """The owner of ``gallery``; PermissionDenied unless ``actor`` belongs to it."""
    owner = ws.orgs.owner_of(gallery)
    if actor.org is not None and actor.org != owner:
        raise PermissionDenied(
            f"user {actor.id!r} of {actor.org!r} may not {what} gallery {gallery!r} of {owner!r}"
        )
    return owner


def list_grants(ws: Workspace, actor: User, gallery: str) -> dict[str, GrantLevel]:
    """Who holds which grant on ``gallery``, for an administrator of its owner or of an
    organisation it is shared with: the grants of their own organisation's users only."""
    authorize(actor, Operation.GRANT_MANAGE, gallery)
    g = ws.store.get_gallery_by_name(gallery)
    if not can_see(ws, actor, g.name):
        raise PermissionDenied(f"gallery {g.name!r} is not shared with {actor.org!r}")
    return ws.access.grants_on(g.name, org=actor.org)


def create_gallery(ws: Workspace, actor: User, req: CreateGallery) -> GalleryInfo:
    """Create a gallery for the workspace's model and record who did it and why it may exist."""
    authorize(actor, Operation.GALLERY_CREATE)
    if req.org is not None and actor.org is not None and req.org != actor.org:
        raise PermissionDenied(f"user {actor.id!r} creates galleries for {actor.org!r} only")
    owner = req.org or actor.org or DEFAULT_ORG
    gallery = ws.store.create_gallery(
        req.name,
        model_id=ws.engine.card.id,
        created_by=actor.id,
        legal_basis=req.legal_basis,
        description=req.description,
        retention_days=req.retention_days,
        retention_hours=req.retention_hours,
    )
    ws.orgs.set_owner(gallery.name, owner)
    ws.audit.append(
        AuditRecord(
            operation=AuditOp.GALLERY_CREATE,
            actor=actor.id,
            galleries=(gallery.name,),
            model_id=gallery.model_id,
            details={
                "legal_basis": str(gallery.legal_basis),
                "retention_days": gallery.retention_days,
                "retention_hours": gallery.retention_hours,
                "description": gallery.description,
                "owner_org": owner,
            },
        )
    )
    return GalleryInfo(gallery, ws.store.counts(gallery.id), owner_org=owner)


def list_galleries(ws: Workspace, actor: User) -> list[GalleryInfo]:
    """The galleries ``actor`` may see, by name, with their counts."""
    authorize(actor, Operation.GALLERY_LIST)
    return [
        GalleryInfo(g, ws.store.counts(g.id), owner_org=ws.orgs.owner_of(g.name))
        for g in ws.store.list_galleries()
        if can_see(ws, actor, g.name)
    ]


def show_gallery(ws: Workspace, actor: User, req: ShowGallery) -> GalleryInfo:
    """One gallery with its counts; PermissionDenied for those who may not see it."""
    authorize(actor, Operation.GALLERY_LIST)
    gallery = ws.store.get_gallery_by_name(req.name)
    if not can_see(ws, actor, gallery.name):
        raise PermissionDenied(f"user {actor.id!r} holds no grant on gallery {gallery.name!r}")
    first: tuple[Subject, ...] = ()
    if req.subjects > 0 and is_allowed(actor, Operation.LIST_SUBJECTS, gallery.name):
        first = ws.store.list_subjects(gallery.id, limit=req.subjects).items
    dimension = ws.engine_for(gallery).card.dimension
    index = ws.indexes.sync(gallery, dimension) if req.check_index else None
    return GalleryInfo(
        gallery, ws.store.counts(gallery.id), first, index, ws.orgs.owner_of(gallery.name)
    )


def delete_gallery(ws: Workspace, actor: User, req: DeleteGallery) -> int:
    """Delete a gallery with everything in it; returns the number of templates removed."""
    gallery = ws.store.get_gallery_by_name(req.name)
    authorize(actor, Operation.GALLERY_MANAGE, gallery.name)
    require_owner(ws, actor, gallery.name, "delete")
    removed = ws.store.delete_gallery(gallery.id)
    ws.indexes.drop(gallery)
    ws.audit.append(
        AuditRecord(
            operation=AuditOp.GALLERY_DELETE,
            actor=actor.id,
            galleries=(gallery.name,),
            details={
                "reason": req.reason,
                "subjects": [s.external_id for s in removed.subjects],
                "template_ids": list(removed.template_ids),
                "image_sha256s": list(removed.image_sha256s),
            },
        )
    )
    if req.compact:
        ws.store.compact()
    return len(removed.template_ids)
