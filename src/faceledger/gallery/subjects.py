"""Removing people and galleries verifiably, and subject access requests.

Deleting a subject removes its templates from the store and the index in one step and writes
an erasure receipt (what was removed, the image hashes, when, by whom) to the audit log;
``verify_erased`` later proves from that receipt that nothing of it remains. Retention
(``apply_retention``) erases expired subjects the same way and deletes expired kept probe
images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import InvalidArgument, NotFound
from faceledger.gallery.images import KeptProbe, delete_probes, kept_probes
from faceledger.gallery.workspace import Workspace
from faceledger.store import Removed


@dataclass(frozen=True)
class ErasureReceipt:
    audit_seq: int
    gallery: str
    subject: str
    template_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]


def delete_subject(
    ws: Workspace, actor: User, gallery_name: str, external_id: str, *, reason: str
) -> ErasureReceipt:
    if not reason.strip():
        raise InvalidArgument("deleting a subject needs a reason (it is kept in the receipt)")
    gallery = ws.store.get_gallery_by_name(gallery_name)
    authorize(actor, Operation.DELETE_SUBJECT, gallery.name)
    subject = ws.store.find_subject(gallery.id, external_id)
    if subject is None:
        raise NotFound(f"no subject {external_id!r} in gallery {gallery.name!r}")
    removed = ws.store.delete_subject(subject.id)
    ws.indexes.remove(gallery.id, removed.template_ids)
    ws.indexes.save(gallery)
    # a graph left mostly tombstones, or a gallery shrunk far below its kind, is rebuilt
    ws.indexes.maybe_reindex(gallery, ws.engine.card.dimension)
    return _receipt(ws, actor, gallery.name, external_id, removed, reason)


def _receipt(
    ws: Workspace, actor: User, gallery: str, subject: str, removed: Removed, reason: str
) -> ErasureReceipt:
    entry = ws.audit.append(
        AuditRecord(
            operation=AuditOp.ERASURE_RECEIPT,
            actor=actor.id,
            galleries=(gallery,),
            details={
                "subject": subject,
                "reason": reason,
                "template_ids": list(removed.template_ids),
                "image_sha256s": list(removed.image_sha256s),
            },
        )
    )
    return ErasureReceipt(entry.seq, gallery, subject, removed.template_ids, removed.image_sha256s)


def delete_gallery(ws: Workspace, actor: User, gallery_name: str, *, reason: str) -> int:
    """Delete a gallery with everything in it; returns the number of templates removed."""
    gallery = ws.store.get_gallery_by_name(gallery_name)
    authorize(actor, Operation.GALLERY_MANAGE, gallery.name)
    removed = ws.store.delete_gallery(gallery.id)
    ws.indexes.drop(gallery)
    ws.audit.append(
        AuditRecord(
            operation=AuditOp.GALLERY_DELETE,
            actor=actor.id,
            galleries=(gallery.name,),
            details={
                "reason": reason,
                "subjects": [s.external_id for s in removed.subjects],
                "template_ids": list(removed.template_ids),
                "image_sha256s": list(removed.image_sha256s),
            },
        )
    )
    return len(removed.template_ids)


def verify_erased(ws: Workspace, receipt_seq: int) -> dict[str, Any]:
    """Check an erasure receipt: the chain verifies, and neither the store nor the index
    holds any of the receipt's templates or image hashes."""
    entry = ws.audit.get(receipt_seq)
    if entry.record.operation != AuditOp.ERASURE_RECEIPT:
        raise InvalidArgument(f"audit entry {receipt_seq} is not an erasure receipt")
    details = dict(entry.record.details)
    gallery_name = entry.record.galleries[0]
    raw_ids = details.get("template_ids") or []
    raw_hashes = details.get("image_sha256s") or []
    if not isinstance(raw_ids, list) or not isinstance(raw_hashes, list):
        raise InvalidArgument(f"audit entry {receipt_seq} is a malformed erasure receipt")
    tids = [int(str(t)) for t in raw_ids]
    hashes = [str(h) for h in raw_hashes]
    chain = ws.audit.verify()
    in_store = sorted(ws.store.get_templates(tids))
    in_index: list[int] = []
    images_held: list[str] = []
    subject_held = False
    try:
        gallery = ws.store.get_gallery_by_name(gallery_name)
    except NotFound:
        gallery = None
    if gallery is not None:
        idx = ws.indexes.get(gallery, ws.engine.card.dimension)
        if tids:
            mask = idx.contains(np.asarray(tids, dtype=np.int64))
            in_index = [t for t, m in zip(tids, mask, strict=True) if m]
        images_held = [h for h in hashes if ws.store.has_image(gallery.id, h)]
        subject_held = ws.store.find_subject(gallery.id, str(details.get("subject"))) is not None
    ok = chain.ok and not in_store and not in_index and not images_held
    return {
        "ok": ok,
        "receipt_seq": receipt_seq,
        "subject": details.get("subject"),
        "gallery": gallery_name,
        "erased_at": entry.timestamp.isoformat(),
        "erased_by": entry.record.actor,
        "audit_chain_ok": chain.ok,
        "templates_in_store": in_store,
        "templates_in_index": in_index,
        "image_hashes_still_enrolled": images_held,
        "subject_id_reused": subject_held,
    }


def export_subject(
    ws: Workspace, actor: User, gallery_name: str, external_id: str
) -> dict[str, Any]:
    """Everything held on one subject (subject access request), as JSON-able data."""
    gallery = ws.store.get_gallery_by_name(gallery_name)
    authorize(actor, Operation.VIEW_IMAGES, gallery.name)
    subject = ws.store.find_subject(gallery.id, external_id)
    if subject is None:
        raise NotFound(f"no subject {external_id!r} in gallery {gallery.name!r}")
    data = ws.store.export_subject(subject.id)
    searches = [
        {
            "seq": e.seq,
            "timestamp": e.timestamp.isoformat(),
            "actor": e.record.actor,
            "purpose": e.record.purpose,
            "case_ref": e.record.case_ref,
        }
        for e in ws.audit.entries(operation=AuditOp.SEARCH)
        if any(
            c.gallery == gallery.name and c.subject_id == external_id for c in e.record.candidates
        )
    ]
    data["appeared_in_searches"] = searches
    return data


@dataclass(frozen=True)
class RetentionRun:
    """What one retention run removed."""

    receipts: list[ErasureReceipt]
    """One erasure receipt per subject held past its gallery's period."""
    probes_deleted: list[str]
    """Search ids whose kept probe image was deleted."""


def apply_retention(
    ws: Workspace, actor: User, *, now: datetime | None = None, gallery: str | None = None
) -> RetentionRun:
    """Erase every subject held longer than its gallery's retention period (one receipt
    each), delete the kept probe images that have expired, and log the purge.

    A probe image (kept so reviewers see what was searched) is personal data of whoever it
    shows, enrolled or not. It may be kept no longer than the **shortest** retention period
    among the galleries its search named that still exist, counted from the search: it was
    processed under each gallery's mandate, and keeping it past the shortest would hold it
    beyond one of them. Open review does not extend the period (review has to happen within
    it). A probe whose search named only galleries since deleted, or that has no search on
    record, has no purpose left and goes at once. A probe kept for galleries none of which
    sets a retention period is kept: there is no period to apply. With ``gallery`` given, only
    probes of searches that named it are considered. The deletions and the ``retention_purge``
    entry listing them (search id and image hash of each, and why) commit in one transaction.
    The audit log holds only each probe's sha256, never its bytes, so nothing outlives this.
    """
    only = ws.store.get_gallery_by_name(gallery) if gallery else None
    authorize(actor, Operation.RETENTION_APPLY, gallery)
    at = now or ws.clock()
    receipts = _erase_expired_subjects(ws, actor, at, None if only is None else only.id)
    probes = _purge_probes(ws, actor, at, receipts, None if only is None else only.name)
    return RetentionRun(receipts, probes)


def _erase_expired_subjects(
    ws: Workspace, actor: User, at: datetime, gallery_id: int | None
) -> list[ErasureReceipt]:
    receipts: list[ErasureReceipt] = []
    names = {g.id: g.name for g in ws.store.list_galleries()}
    for subject in ws.store.list_expired_subjects(now=at, gallery_id=gallery_id):
        g = ws.store.get_gallery(subject.gallery_id)
        removed = ws.store.delete_subject(subject.id)
        ws.indexes.remove(g.id, removed.template_ids)
        ws.indexes.save(g)
        ws.indexes.maybe_reindex(g, ws.engine.card.dimension)
        receipts.append(
            _receipt(
                ws,
                actor,
                names[g.id],
                subject.external_id,
                removed,
                f"retention period of {g.retention_days} days expired",
            )
        )
    return receipts


def _purge_probes(
    ws: Workspace, actor: User, at: datetime, receipts: list[ErasureReceipt], gallery: str | None
) -> list[str]:
    """Delete the expired kept probes and write the purge's audit entry (the subjects'
    receipts and the probes deleted), both in one transaction; the deleted probes' searches."""
    periods = {g.name: g.retention_days for g in ws.store.list_galleries()}
    with ws.audit.writing() as conn:
        expired = _expired_probes(conn, periods, at, gallery)
        delete_probes(conn, [probe.search_id for probe, _ in expired])
        touched = {r.gallery for r in receipts} | {g for p, _ in expired for g in p.galleries}
        ws.audit.append(
            AuditRecord(
                operation=AuditOp.RETENTION_PURGE,
                actor=actor.id,
                galleries=tuple(sorted(touched)),
                details={
                    "count": len(receipts) + len(expired),
                    "as_of": at.isoformat(),
                    "receipts": [r.audit_seq for r in receipts],
                    "probe_images": [
                        {"search_id": p.search_id, "probe_sha256": p.sha256, "reason": why}
                        for p, why in expired
                    ],
                },
            ),
            connection=conn,
        )
    return [probe.search_id for probe, _ in expired]


def _expired_probes(
    conn: sa.Connection, periods: Mapping[str, int | None], at: datetime, gallery: str | None
) -> list[tuple[KeptProbe, str]]:
    """Kept probes due for deletion at ``at``, each with why (of searches that named
    ``gallery``, when one is given)."""
    found = []
    for probe in kept_probes(conn):
        if gallery is not None and gallery not in probe.galleries:
            continue
        why = probe_expiry(probe, periods, at)
        if why is not None:
            found.append((probe, why))
    return found


def probe_expiry(probe: KeptProbe, periods: Mapping[str, int | None], at: datetime) -> str | None:
    """Why a kept probe image must be deleted at ``at``, or None while it may be kept (the
    rule is :func:`apply_retention`'s). ``periods``: retention days of every existing gallery
    by name (None: no period)."""
    if probe.searched_at is None:
        return "no search on record"
    existing = [g for g in probe.galleries if g in periods]
    if not existing:
        return "every gallery searched has been deleted"
    days = [d for g in existing if (d := periods[g]) is not None]
    if not days:
        return None
    shortest = min(days)
    if probe.searched_at < at - timedelta(days=shortest):
        return f"retention period of {shortest} days expired"
    return None
