"""Creating, listing and showing galleries, authorised and audited (used by the CLI and the API).

Listing follows least privilege: an administrator sees every gallery, anyone else only the
galleries they hold a grant on (a gallery's name can itself be sensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access import Operation, Role, User, authorize
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import PermissionDenied
from faceledger.gallery.workspace import Workspace
from faceledger.store import Counts, Gallery, LegalBasis


@dataclass(frozen=True)
class GalleryInfo:
    gallery: Gallery
    counts: Counts


def create_gallery(
    ws: Workspace,
    actor: User,
    name: str,
    *,
    legal_basis: LegalBasis | str,
    description: str = "",
    retention_days: int | None = None,
) -> Gallery:
    """Create a gallery for the workspace's model and record who did it and why it may exist."""
    authorize(actor, Operation.GALLERY_CREATE)
    gallery = ws.store.create_gallery(
        name,
        model_id=ws.engine.card.id,
        created_by=actor.id,
        legal_basis=legal_basis,
        description=description,
        retention_days=retention_days,
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
                "description": gallery.description,
            },
        )
    )
    return gallery


def can_see(actor: User, gallery: str) -> bool:
    """Whether ``actor`` may know ``gallery`` exists: an admin, or anyone with a grant on it."""
    return actor.active and (Role.ADMIN in actor.roles or actor.level_on(gallery) is not None)


def list_galleries(ws: Workspace, actor: User) -> list[Gallery]:
    """The galleries ``actor`` may see, by name."""
    authorize(actor, Operation.GALLERY_LIST)
    return [g for g in ws.store.list_galleries() if can_see(actor, g.name)]


def show_gallery(ws: Workspace, actor: User, name: str) -> GalleryInfo:
    """One gallery with its counts; PermissionDenied for those who may not see it."""
    authorize(actor, Operation.GALLERY_LIST)
    gallery = ws.store.get_gallery_by_name(name)
    if not can_see(actor, gallery.name):
        raise PermissionDenied(f"user {actor.id!r} holds no grant on gallery {gallery.name!r}")
    return GalleryInfo(gallery, ws.store.counts(gallery.id))
