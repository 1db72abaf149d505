"""Enrolled images for the people who may see them, each view audited."""

from __future__ import annotations

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditRecord
from faceledger.errors import NotFound
from faceledger.gallery.images import StoredImage
from faceledger.gallery.workspace import Workspace

OP_IMAGE_VIEW = "image_view"


def enrolled_image(ws: Workspace, actor: User, gallery: str, template_id: int) -> StoredImage:
    """The kept image of a template of ``gallery``, for a user with ``view_images`` on it;
    each view is audited when ``Settings.audit_image_views`` says so."""
    authorize(actor, Operation.VIEW_IMAGES, gallery)
    g = ws.store.get_gallery_by_name(gallery)
    found = ws.store.get_templates([template_id]).get(template_id)
    if found is None or found.info.gallery_id != g.id:
        raise NotFound(f"no template {template_id} in gallery {g.name!r}")
    image = ws.images.get(template_id)
    if ws.settings.audit_image_views:
        ws.audit.append(
            AuditRecord(
                operation=OP_IMAGE_VIEW,
                actor=actor.id,
                galleries=(g.name,),
                details={
                    "template_id": template_id,
                    "subject": ws.store.get_subject(found.info.subject_id).external_id,
                    "image_sha256": image.sha256,
                },
            )
        )
    return image
