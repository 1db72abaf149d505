"""Galleries: create, list, show and delete, authorised and audited.

Listing follows least privilege: an administrator sees every gallery, anyone else only the
galleries they hold a grant on (a gallery's name can itself be sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access import Operation, Role, User, authorize, is_allowed
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


def can_see(actor: User, gallery: str) -> bool:
    """Whether ``actor`` may know ``gallery`` exists: an admin, or anyone with a grant on it."""
    return actor.active and (Role.ADMIN in actor.roles or actor.level_on(gallery) is not None)


def create_gallery(ws: Workspace, actor: User, req: CreateGallery) -> GalleryInfo:
    """Create a gallery for the workspace's model and record who did it and why it may exist."""
    authorize(actor, Operation.GALLERY_CREATE)
    gallery = ws.store.create_gallery(
        req.name,
        model_id=ws.engine.card.id,
        created_by=actor.id,
        legal_basis=req.legal_basis,
        description=req.description,
        retention_days=req.retention_days,
        retention_hours=req.retention_hours,
    )
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
            },
        )
    )
    return GalleryInfo(gallery, ws.store.counts(gallery.id))


def list_galleries(ws: Workspace, actor: User) -> list[GalleryInfo]:
    """The galleries ``actor`` may see, by name, with their counts."""
    authorize(actor, Operation.GALLERY_LIST)
    return [
        GalleryInfo(g, ws.store.counts(g.id))
        for g in ws.store.list_galleries()
        if can_see(actor, g.name)
    ]


def show_gallery(ws: Workspace, actor: User, req: ShowGallery) -> GalleryInfo:
    """One gallery with its counts; PermissionDenied for those who may not see it."""
    authorize(actor, Operation.GALLERY_LIST)
    gallery = ws.store.get_gallery_by_name(req.name)
    if not can_see(actor, gallery.name):
        raise PermissionDenied(f"user {actor.id!r} holds no grant on gallery {gallery.name!r}")
    first: tuple[Subject, ...] = ()
    if req.subjects > 0 and is_allowed(actor, Operation.LIST_SUBJECTS, gallery.name):
        first = ws.store.list_subjects(gallery.id, limit=req.subjects).items
    dimension = ws.engine_for(gallery).card.dimension
    index = ws.indexes.sync(gallery, dimension) if req.check_index else None
    return GalleryInfo(gallery, ws.store.counts(gallery.id), first, index)


def delete_gallery(ws: Workspace, actor: User, req: DeleteGallery) -> int:
    """Delete a gallery with everything in it; returns the number of templates removed."""
    gallery = ws.store.get_gallery_by_name(req.name)
    authorize(actor, Operation.GALLERY_MANAGE, gallery.name)
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
