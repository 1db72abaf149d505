"""Each organisation's view of the audit log (auditors).

An auditor of an organisation reads only the entries that concern it (its users' actions,
its galleries, agreements it is party to: ``audit_scopes``); an entry outside that scope is
not found. Its export keeps the whole chain's links: an entry outside the scope is a stub
(position, hashes, signature, ``"withheld": true``), so the organisation verifies its view
independently (:func:`faceledger.audit.verify_jsonl`). The deployment itself (an actor with
no organisation) reads everything, as before organisations existed; in a workspace with one
organisation everything is the default organisation's, so its auditors see it all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditEntry, build_report
from faceledger.errors import NotFound
from faceledger.gallery.workspace import Workspace


@dataclass(frozen=True)
class AuditQuery:
    start: datetime | None = None
    end: datetime | None = None
    operation: str | None = None
    actor: str | None = None
    after_seq: int = 0
    limit: int | None = None


def audit_scope(actor: User) -> str | None:
    """The organisation whose entries ``actor`` reads (None: every entry)."""
    return actor.org


def audit_entries(ws: Workspace, actor: User, query: AuditQuery) -> Iterator[AuditEntry]:
    """The entries ``actor`` may read, in order."""
    authorize(actor, Operation.AUDIT_READ)
    return ws.audit.entries(
        query.start,
        query.end,
        operation=query.operation,
        actor=query.actor,
        after_seq=query.after_seq,
        limit=query.limit,
        scope=audit_scope(actor),
    )


def audit_entry(ws: Workspace, actor: User, seq: int) -> AuditEntry:
    """One entry; :class:`NotFound` when it does not concern ``actor``'s organisation."""
    authorize(actor, Operation.AUDIT_READ)
    scope = audit_scope(actor)
    if scope is not None and scope not in ws.audit.scopes(seq):
        raise NotFound(f"no audit entry {seq}")
    return ws.audit.get(seq)


def export_audit(
    ws: Workspace,
    actor: User,
    fp: TextIO,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """Write ``actor``'s view as JSON lines (stubs for the entries withheld); the lines."""
    authorize(actor, Operation.AUDIT_READ)
    return ws.audit.export_jsonl(fp, start, end, scope=audit_scope(actor))


def audit_use_report(ws: Workspace, actor: User, start: datetime, end: datetime) -> dict[str, Any]:
    """The use report (``audit.report``) over the entries ``actor`` may read."""
    authorize(actor, Operation.AUDIT_READ)
    scope = audit_scope(actor)
    if scope is None:
        return ws.audit.report(start, end)
    report = build_report(ws.audit.entries(start, end, scope=scope), start, end)
    report["org"] = scope
    return report
