"""Subjects of a gallery: a page of them, one with its templates, and everything held on one
(subject access request)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceledger.access import Operation, User, authorize
from faceledger.audit import SEARCH_OPS
from faceledger.errors import InvalidArgument, NotFound
from faceledger.gallery.workspace import Workspace
from faceledger.store import Gallery, Page, Subject, TemplateInfo
from faceledger.usecases.galleries import require_owner


@dataclass(frozen=True)
class SubjectDetail:
    gallery: Gallery
    subject: Subject
    templates: tuple[TemplateInfo, ...]
    images_kept: frozenset[int]
    """Ids of the templates whose enrolled image is kept."""


def list_subjects(
    ws: Workspace, actor: User, gallery: str, *, limit: int, cursor: str | None = None
) -> Page[Subject]:
    """A page of a gallery's subjects; pass ``next_cursor`` back for the next one."""
    authorize(actor, Operation.LIST_SUBJECTS, gallery)
    require_owner(ws, actor, gallery, "list the subjects of")
    g = ws.store.get_gallery_by_name(gallery)
    if cursor is not None and (not cursor.isdigit() or len(cursor) > 18):
        raise InvalidArgument(f"malformed page cursor {cursor!r}")
    return ws.store.list_subjects(g.id, limit=limit, cursor=cursor or None)


def _find(ws: Workspace, gallery: str, external_id: str) -> tuple[Gallery, Subject]:
    g = ws.store.get_gallery_by_name(gallery)
    found = ws.store.find_subject(g.id, external_id)
    if found is None:
        raise NotFound(f"no subject {external_id!r} in gallery {g.name!r}")
    return g, found


def subject_detail(ws: Workspace, actor: User, gallery: str, external_id: str) -> SubjectDetail:
    """One subject with its templates and which of their images are kept."""
    authorize(actor, Operation.LIST_SUBJECTS, gallery)
    require_owner(ws, actor, gallery, "read the subjects of")
    g, found = _find(ws, gallery, external_id)
    infos = tuple(ws.store.list_templates(found.id))
    kept = frozenset(ws.images.held(t.id for t in infos))
    return SubjectDetail(g, found, infos, kept)


def export_subject(ws: Workspace, actor: User, gallery: str, external_id: str) -> dict[str, Any]:
    """Everything held on one subject (subject access request), as JSON-able data: the
    record, its templates, which enrolled images are kept, and the searches it appeared in."""
    authorize(actor, Operation.VIEW_IMAGES, gallery)
    require_owner(ws, actor, gallery, "export the subjects of")
    g, subject = _find(ws, gallery, external_id)
    data = ws.store.export_subject(subject.id)
    data["appeared_in_searches"] = [
        {
            "seq": e.seq,
            "timestamp": e.timestamp.isoformat(),
            "actor": e.record.actor,
            "purpose": e.record.purpose,
            "case_ref": e.record.case_ref,
        }
        for e in ws.audit.entries()
        if e.record.operation in SEARCH_OPS
        if any(c.gallery == g.name and c.subject_id == external_id for c in e.record.candidates)
    ]
    ids = [int(t["id"]) for t in data.get("templates", []) if isinstance(t, dict)]
    data["enrolled_images_kept"] = sorted(ws.images.held(ids))
    return data
