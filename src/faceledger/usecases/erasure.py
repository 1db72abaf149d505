"""Removing people verifiably: erasure of a subject, its check, and retention.

Deleting a subject removes its templates from the store and the index in one step (their kept
images go with them by the database's cascade) and writes an erasure receipt (what was
removed, the image hashes, when, by whom) to the audit log; :func:`check_erasure` later proves
from that receipt that nothing of it remains. Retention (:func:`apply_retention`) erases
expired subjects the same way and deletes expired kept probe images.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import sqlalchemy as sa

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import FaceLedgerError, InvalidArgument, NotFound
from faceledger.gallery.images import KeptProbe, delete_probes, kept_probes
from faceledger.gallery.workspace import Workspace
from faceledger.store import Gallery, Removed, Subject, read_transaction
from faceledger.usecases.audit_views import audit_entry
from faceledger.usecases.cluster_review import purge_expired_cluster_sets
from faceledger.usecases.galleries import require_owner

log = logging.getLogger("faceledger.usecases")


@dataclass(frozen=True)
class ErasureReceipt:
    audit_seq: int
    gallery: str
    subject: str
    template_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]


@dataclass(frozen=True)
class EraseSubject:
    gallery: str
    subject: str
    reason: str
    compact: bool = False
    """Reclaim the erased bytes from the database file now (``subject delete`` does)."""


@dataclass(frozen=True)
class Erased:
    receipt: ErasureReceipt
    images_removed: int
    """Kept enrolled images that went with the subject's templates."""


def erase_subject(ws: Workspace, actor: User, req: EraseSubject) -> Erased:
    """Delete a subject from store and index at once; the receipt goes to the audit log."""
    if not req.reason.strip():
        raise InvalidArgument("deleting a subject needs a reason (it is kept in the receipt)")
    authorize(actor, Operation.DELETE_SUBJECT, req.gallery)
    gallery = ws.store.get_gallery_by_name(req.gallery)
    subject = ws.store.find_subject(gallery.id, req.subject)
    if subject is None:
        raise NotFound(f"no subject {req.subject!r} in gallery {gallery.name!r}")
    images = len(ws.images.held(t.id for t in ws.store.list_templates(subject.id)))
    receipt = _erase(ws, actor, gallery, subject, req.reason)
    if req.compact:
        ws.store.compact()
    return Erased(receipt, images)


def _erase(
    ws: Workspace, actor: User, gallery: Gallery, subject: Subject, reason: str
) -> ErasureReceipt:
    """The one erasure (a request or retention): store (templates, kept images by cascade, job
    items' keys), index, the review leads that name the subject, then the receipt."""
    removed = ws.store.delete_subject(subject.id)
    ws.indexes.remove(gallery.id, removed.template_ids)
    ws.indexes.save(gallery)
    # a graph left mostly tombstones, or a gallery shrunk far below its kind, is rebuilt
    ws.indexes.maybe_reindex(gallery, ws.engine_for(gallery).card.dimension)
    ws.reviews.forget_subject(gallery.name, subject.external_id)
    return _receipt(ws, actor, gallery.name, subject.external_id, removed, reason)


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


@dataclass(frozen=True)
class ErasureCheck:
    """What :func:`check_erasure` found for one receipt; ``ok`` only when nothing is left."""

    ok: bool
    receipt_seq: int
    subject: str
    gallery: str
    erased_at: str
    erased_by: str
    audit_chain_ok: bool
    templates_in_store: list[int]
    templates_in_index: list[int]
    image_hashes_still_enrolled: list[str]
    enrolled_images_still_held: list[str]
    review_leads_naming_subject: int
    """Leads of searches that still name the subject (erasure closes and unnames them)."""
    subject_id_reused: bool
    """The subject id names a subject again (enrolled anew after the erasure)."""

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def check_erasure(ws: Workspace, actor: User, receipt_seq: int) -> ErasureCheck:
    """Check an erasure receipt: the chain verifies, and neither the store, the index nor
    the image store holds any of the receipt's templates or images. An organisation's
    auditor checks the receipts of its own galleries (others are not found)."""
    entry = audit_entry(ws, actor, receipt_seq)
    if entry.record.operation != AuditOp.ERASURE_RECEIPT:
        raise InvalidArgument(f"audit entry {receipt_seq} is not an erasure receipt")
    details = dict(entry.record.details)
    raw_ids = details.get("template_ids") or []
    raw_hashes = details.get("image_sha256s") or []
    if not isinstance(raw_ids, list) or not isinstance(raw_hashes, list):
        raise InvalidArgument(f"audit entry {receipt_seq} is a malformed erasure receipt")
    tids = [int(str(t)) for t in raw_ids]
    hashes = [str(h) for h in raw_hashes]
    subject = str(details.get("subject"))
    gallery_name = entry.record.galleries[0]
    chain = ws.audit.verify()
    in_store = sorted(ws.store.get_templates(tids))
    try:
        gallery = ws.store.get_gallery_by_name(gallery_name)
    except NotFound:
        gallery = None
    in_index: list[int] = []
    images_held: list[str] = []
    subject_held = False
    if gallery is not None:
        idx = ws.indexes.get(gallery, ws.engine_for(gallery).card.dimension)
        if tids:
            mask = idx.contains(np.asarray(tids, dtype=np.int64))
            in_index = [t for t, m in zip(tids, mask, strict=True) if m]
        images_held = [h for h in hashes if ws.store.has_image(gallery.id, h)]
        subject_held = ws.store.find_subject(gallery.id, subject) is not None
    kept = ws.images.hashes_held(hashes, None if gallery is None else gallery.id)
    leads = 0 if subject_held else ws.reviews.leads_naming(gallery_name, subject)
    return ErasureCheck(
        ok=chain.ok and not (in_store or in_index or images_held or kept or leads),
        receipt_seq=receipt_seq,
        subject=subject,
        gallery=gallery_name,
        erased_at=entry.timestamp.isoformat(),
        erased_by=entry.record.actor,
        audit_chain_ok=chain.ok,
        templates_in_store=in_store,
        templates_in_index=in_index,
        image_hashes_still_enrolled=images_held,
        enrolled_images_still_held=kept,
        review_leads_naming_subject=leads,
        subject_id_reused=subject_held,
    )


@dataclass(frozen=True)
class RetentionRun:
    """What one retention run removed."""

    receipts: list[ErasureReceipt]
    """One erasure receipt per subject held past its gallery's period."""
    probes_deleted: list[str]
    """Search ids whose kept probe image was deleted."""
    failed: list[str] = field(default_factory=list)
    """``gallery/subject: why`` of each expired subject that could not be erased (retried by
    the next run)."""
    cluster_sets_deleted: list[str] = field(default_factory=list)
    """Kept cluster sets past ``Settings.cluster_set_retention_days``, deleted (a run for
    one gallery leaves them: they belong to no gallery)."""


@dataclass(frozen=True)
class ApplyRetention:
    gallery: str | None = None
    """Only this gallery (and the probes of searches that named it)."""
    now: datetime | None = None
    """The moment to apply the periods at (default: the workspace's clock)."""
    compact: bool = False
    """Reclaim the erased bytes from the database files when anything was erased."""
    quiet: bool = False
    """Write the ``retention_purge`` entry only when the run removed something (the service's
    timer runs every few minutes; an entry each time saying nothing happened would bury the
    log). A run on request always writes it: someone asked, and the log says what came of it."""


def apply_retention(ws: Workspace, actor: User, req: ApplyRetention) -> RetentionRun:
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
    Periods count in their gallery's unit, days or hours, to the moment.
    """
    authorize(actor, Operation.RETENTION_APPLY, req.gallery)
    if req.gallery:
        require_owner(ws, actor, req.gallery, "apply retention to")
    only = ws.store.get_gallery_by_name(req.gallery) if req.gallery else None
    at = req.now or ws.clock()
    failed: list[str] = []
    receipts = _erase_expired_subjects(ws, actor, at, None if only is None else only.id, failed)
    probes = _purge_probes(
        ws, actor, at, receipts, None if only is None else only.name, quiet=req.quiet
    )
    sets = [] if only is not None else purge_expired_cluster_sets(ws, actor, at)
    if req.compact and (receipts or probes):  # erased bytes leave the files
        ws.store.compact()
        ws.images.compact()
    return RetentionRun(receipts, probes, failed, sets)


def _erase_expired_subjects(
    ws: Workspace, actor: User, at: datetime, gallery_id: int | None, failed: list[str]
) -> list[ErasureReceipt]:
    """Erase each expired subject; one that cannot be erased is logged and listed in
    ``failed`` and does not stop the others."""
    receipts: list[ErasureReceipt] = []
    for subject in ws.store.list_expired_subjects(now=at, gallery_id=gallery_id):
        g = ws.store.get_gallery(subject.gallery_id)
        why = f"retention period of {g.retention_text} expired"
        try:
            receipts.append(_erase(ws, actor, g, subject, why))
        except FaceLedgerError as exc:
            log.error("retention: %s/%s not erased: %s", g.name, subject.external_id, exc)
            failed.append(f"{g.name}/{subject.external_id}: {exc.message}")
    return receipts


def _purge_probes(
    ws: Workspace,
    actor: User,
    at: datetime,
    receipts: list[ErasureReceipt],
    gallery: str | None,
    *,
    quiet: bool,
) -> list[str]:
    """Delete the expired kept probes and write the purge's audit entry (the subjects'
    receipts and the probes deleted), both in one transaction; the deleted probes' searches.
    A quiet run that finds nothing to purge and erased nobody writes nothing; it looks first
    in a read transaction, so that an idle timer never takes the audit log's write lock."""
    periods = {g.name: g for g in ws.store.list_galleries()}
    if quiet and not receipts:
        with read_transaction(ws.db) as conn:
            if not _expired_probes(conn, periods, at, gallery):
                return []
    with ws.audit.writing() as conn:
        expired = _expired_probes(conn, periods, at, gallery)
        if quiet and not (receipts or expired):
            return []
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
    conn: sa.Connection, periods: Mapping[str, Gallery], at: datetime, gallery: str | None
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


def probe_expiry(probe: KeptProbe, galleries: Mapping[str, Gallery], at: datetime) -> str | None:
    """Why a kept probe image must be deleted at ``at``, or None while it may be kept (the
    rule is :func:`apply_retention`'s). ``galleries``: every existing gallery by name; their
    periods are compared as durations, whatever unit each was set in."""
    if probe.searched_at is None:
        return "no search on record"
    existing = [galleries[g] for g in probe.galleries if g in galleries]
    if not existing:
        return "every gallery searched has been deleted"
    bounded = [(period, g) for g in existing if (period := g.retention) is not None]
    if not bounded:
        return None
    period, shortest = min(bounded, key=lambda pair: pair[0])
    try:
        cutoff = at - period
    except OverflowError:  # a period older than the calendar: nothing expires
        return None
    if probe.searched_at < cutoff:
        return f"retention period of {shortest.retention_text} expired"
    return None
