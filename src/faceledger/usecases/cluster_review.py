"""Kept cluster sets: list, show, review (merge, split, name, dismiss, undo), enrol, retention.

``faceledger cluster --keep`` keeps one request's faces as a set (:mod:`.clustering`); here
its creator and the reviewers of their organisation work on it. Every review action and its
audit entry commit together. A cluster becomes a gallery subject only by an explicit
enrolment naming the gallery, the subject and the legal basis, by someone allowed to enrol
there; its seedable faces' templates are enrolled as they were computed (no image is kept in
the gallery). Sets are deleted when ``Settings.cluster_set_retention_days`` have passed
(:func:`purge_expired_cluster_sets`, run by :func:`~.erasure.apply_retention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import Conflict, InvalidArgument, ModelMismatch
from faceledger.gallery.workspace import Workspace
from faceledger.review.cluster_sets import ClusterSet, SetSummary
from faceledger.store import LegalBasis, NewTemplate, Subject
from faceledger.types import Template

OP_CLUSTER_FACE_VIEW = "cluster_face_view"


def list_cluster_sets(ws: Workspace, actor: User, limit: int = 100) -> list[SetSummary]:
    """The kept sets ``actor`` may read (those they kept and, as a reviewer, those of their
    organisation), newest first, at most ``limit``: who, why, when, how many faces and
    clusters. Those who may cluster (``Operation.DETECT``)."""
    authorize(actor, Operation.DETECT)
    return ws.cluster_sets.readable(actor, limit)


def cluster_set_summary_json(s: SetSummary) -> dict[str, object]:
    """A listed set as JSON."""
    return {
        "set_id": s.set_id,
        "purpose": s.purpose,
        "case_ref": s.case_ref,
        "created_by": s.created_by,
        "org": s.owner_org,
        "created_at": s.created_at.isoformat(),
        "expires_at": s.expires_at.isoformat(),
        "faces": s.faces,
        "clusters": s.clusters,
    }


def show_cluster_set(ws: Workspace, actor: User, set_id: str) -> ClusterSet:
    """A kept set: its faces (no template), clusters, labels, dismissals and actions."""
    return ws.cluster_sets.get(actor, set_id)


def cluster_face_crop(ws: Workspace, actor: User, set_id: str, face_no: int) -> bytes:
    """The kept JPEG crop of face ``face_no`` of a set ``actor`` may read (its creator and
    the reviewers of its organisation); each view is audited as ``cluster_face_view`` when
    ``Settings.audit_image_views`` says so."""
    cs = ws.cluster_sets.get(actor, set_id)
    crop = ws.cluster_sets.crop(actor, cs, face_no)
    if ws.settings.audit_image_views:
        ws.audit.append(
            AuditRecord(
                operation=OP_CLUSTER_FACE_VIEW,
                actor=actor.id,
                purpose=cs.purpose,
                case_ref=cs.case_ref,
                details={
                    "cluster_set_id": cs.set_id,
                    "face": int(face_no),
                    "image_sha256": cs.faces[int(face_no)].image_sha256,
                },
            )
        )
    return crop


def merge_clusters(ws: Workspace, actor: User, set_id: str, into: int, other: int) -> ClusterSet:
    """Merge cluster ``other`` into ``into`` (``CannotLink`` across two faces of one image)."""
    return ws.cluster_sets.merge(actor, set_id, into, other)


def split_cluster(
    ws: Workspace, actor: User, set_id: str, cluster: int, faces: tuple[int, ...]
) -> ClusterSet:
    """Move ``faces`` (face numbers of the set) of ``cluster`` to a new cluster."""
    return ws.cluster_sets.split(actor, set_id, cluster, faces)


def name_cluster(ws: Workspace, actor: User, set_id: str, cluster: int, label: str) -> ClusterSet:
    """Label a cluster for the investigator (a note, not an identity)."""
    return ws.cluster_sets.name(actor, set_id, cluster, label)


def dismiss_cluster(
    ws: Workspace, actor: User, set_id: str, cluster: int, reason: str
) -> ClusterSet:
    """Reject a cluster as a person: it can no longer be enrolled."""
    return ws.cluster_sets.dismiss(actor, set_id, cluster, reason)


def undo_cluster_action(ws: Workspace, actor: User, set_id: str) -> ClusterSet:
    """Undo the set's last review action."""
    return ws.cluster_sets.undo(actor, set_id)


@dataclass(frozen=True)
class EnrolCluster:
    set_id: str
    cluster: int
    gallery: str
    subject_id: str
    legal_basis: LegalBasis | str
    note: str = ""


@dataclass(frozen=True)
class ClusterEnrolled:
    subject: Subject
    template_ids: tuple[int, ...]
    face_nos: tuple[int, ...]
    audit_seq: int


def enrol_cluster(ws: Workspace, actor: User, req: EnrolCluster) -> ClusterEnrolled:
    """Enrol cluster ``req.cluster`` of a kept set as subject ``req.subject_id`` of
    ``req.gallery``: its seedable faces' templates, audited with the set, the legal basis and
    the face count. The actor must be allowed to enrol in the gallery and to read the set;
    a dismissed cluster, or a set made with another model than the gallery's, is refused."""
    authorize(actor, Operation.ENROL, req.gallery)
    try:
        basis = LegalBasis(req.legal_basis)
    except ValueError:
        raise InvalidArgument(
            f"legal basis must be one of {', '.join(LegalBasis)}, not {req.legal_basis!r}"
        ) from None
    gallery = ws.store.get_gallery_by_name(req.gallery)
    store = ws.cluster_sets
    cs = store.get(actor, req.set_id)
    cluster = cs.cluster(int(req.cluster))
    if cluster.dismissed:
        raise Conflict(f"cluster {req.cluster} of set {cs.set_id} was dismissed: not a person")
    if cs.model_id != gallery.model_id:
        raise ModelMismatch(
            f"set {cs.set_id} was clustered with model {cs.model_id!r}; gallery "
            f"{gallery.name!r} holds model {gallery.model_id!r}"
        )
    chosen = tuple(n for n in cluster.faces if cs.faces[n].seedable)
    if not chosen:
        raise Conflict(f"cluster {req.cluster} holds no face passing the quality gates")
    vectors = store.vectors(actor, cs, chosen)
    templates = [Template(cs.model_id, v) for v in vectors]
    with ws.audit.writing() as conn:  # subject, templates, entry and set action together
        subject, _ = ws.store.ensure_subject(
            gallery.id,
            req.subject_id,
            enrolled_by=actor.id,
            legal_basis=basis,
            source=f"cluster set {cs.set_id}",
            connection=conn,
        )
        ids = ws.store.add_templates(
            [
                NewTemplate(
                    subject.id,
                    cs.faces[n].image_sha256,
                    t,
                    quality_score=cs.faces[n].quality,
                )
                for n, t in zip(chosen, templates, strict=True)
            ],
            connection=conn,
        )
        details: dict[str, Any] = {
            "cluster_set_id": cs.set_id,
            "set_seq": cs.audit_seq,
            "cluster": int(req.cluster),
            "subject": subject.external_id,
            "legal_basis": str(basis),
            "faces": len(chosen),
            "template_ids": list(ids),
            "image_sha256s": sorted({cs.faces[n].image_sha256 for n in chosen}),
            "note": req.note.strip(),
        }
        entry = ws.audit.append(
            AuditRecord(
                operation=AuditOp.CLUSTER_ENROL,
                actor=actor.id,
                purpose=cs.purpose,
                case_ref=cs.case_ref,
                galleries=(gallery.name,),
                model_id=cs.model_id,
                details=details,
            ),
            connection=conn,
        )
        store.record_enrolment(conn, actor, cs.set_id, details, entry.seq)
    ws.indexes.add(gallery, list(ids), templates)
    ws.indexes.save(gallery)
    ws.indexes.maybe_reindex(gallery, templates[0].dimension)
    return ClusterEnrolled(subject, tuple(ids), chosen, entry.seq)


def purge_expired_cluster_sets(ws: Workspace, actor: User, now: datetime) -> list[str]:
    """Delete every kept set past its retention at ``now`` (faces, crops, templates,
    actions) with one ``cluster_set_purge`` entry; none when nothing expired. The ids."""
    authorize(actor, Operation.RETENTION_APPLY)
    return ws.cluster_sets.purge_expired(actor, now)


def cluster_set_json(cs: ClusterSet) -> dict[str, object]:
    """A set as JSON: faces with their cluster (no template, no crop), clusters, actions."""
    return {
        "set_id": cs.set_id,
        "purpose": cs.purpose,
        "case_ref": cs.case_ref,
        "created_by": cs.created_by,
        "org": cs.owner_org,
        "created_at": cs.created_at.isoformat(),
        "expires_at": cs.expires_at.isoformat(),
        "model_id": cs.model_id,
        "threshold": cs.threshold,
        "target_fmr": cs.target_fmr,
        "method": cs.method,
        "audit_seq": cs.audit_seq,
        "faces": [
            {
                "face": f.face_no,
                "image_sha256": f.image_sha256,
                "face_index": f.face_index,
                "box": [f.box.left, f.box.top, f.box.right, f.box.bottom],
                "quality": f.quality,
                "seedable": f.seedable,
                "cluster": f.cluster,
                "ambiguous": f.ambiguous,
                "track": None if f.span is None else {"start_s": f.span[0], "end_s": f.span[1]},
            }
            for f in cs.faces
        ],
        "clusters": [
            {
                "cluster": c.cluster,
                "faces": list(c.faces),
                "label": c.label,
                "dismissed": c.dismissed,
                "dismiss_reason": c.dismiss_reason,
            }
            for c in cs.clusters
        ],
        "actions": [
            {
                "action": a.action,
                "actor": a.actor,
                "at": a.acted_at.isoformat(),
                "audit_seq": a.audit_seq,
                "undone": a.undone,
            }
            for a in cs.actions
        ],
    }
