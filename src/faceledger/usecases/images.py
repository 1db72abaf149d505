"""Enrolled images for the people who may see them, each view audited."""

from __future__ import annotations

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditRecord
from faceledger.errors import NotFound, PermissionDenied
from faceledger.gallery.images import StoredImage
from faceledger.gallery.workspace import Workspace
from faceledger.usecases.sharing import require_live_agreement

OP_IMAGE_VIEW = "image_view"


def enrolled_image(ws: Workspace, actor: User, gallery: str, template_id: int) -> StoredImage:
    """The kept image of a template of ``gallery``, for a user with ``view_images`` on it;
    each view is audited when ``Settings.audit_image_views`` says so. Another organisation
    than the owner sees only the images of leads its own searches got and may see (not
    redacted, or released)."""
    authorize(actor, Operation.VIEW_IMAGES, gallery)
    require_live_agreement(ws, actor, gallery)
    if (
        actor.org is not None
        and ws.orgs.owner_of(gallery) != actor.org
        and not ws.reviews.shows_template(actor.org, gallery, template_id)
    ):
        raise PermissionDenied(
            f"template {template_id} of gallery {gallery!r} is no lead of a search by "
            f"{actor.org!r} that its owner has let it see"
        )
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
