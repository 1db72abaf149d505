"""Summary of the engine's use over a period, computed from audit entries alone.

So a report only ever states what the tamper-evident log proves. Review entries are read by
these ``details`` keys (written by :mod:`faceledger.review`): ``search_id``, ``rank``,
``verdict`` (confirmed/rejected/inconclusive) and ``status`` (the lead's state after the
decision); retention purges may give ``count`` (items purged).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from faceledger.audit.records import SEARCH_OPS, AuditEntry, AuditOp, format_timestamp


def build_report(entries: Iterable[AuditEntry], start: datetime, end: datetime) -> dict[str, Any]:
    """Counts and rates for entries with ``start <= time < end``.

    - searches: total, by purpose, by gallery (a search of two galleries counts for each), by
      actor, candidates returned, share of searches that returned at least one candidate;
    - reviews: decisions by verdict and by reviewer, leads reviewed, leads whose last status
      in the period is ``confirmed``, and confirmed / reviewed;
    - deletions: subjects deleted, erasure receipts, retention purges and items purged;
    - document checks: total, by purpose, by decision (pass/refer) and reason;
    - access: grants and revocations; and entries by operation.
    """
    by_op: Counter[str] = Counter()
    search_purpose: Counter[str] = Counter()
    search_gallery: Counter[str] = Counter()
    search_actor: Counter[str] = Counter()
    verify_purpose: Counter[str] = Counter()
    documents = _DocumentChecks()
    searches = with_candidates = candidates = 0
    verdicts: Counter[str] = Counter()
    by_reviewer: defaultdict[str, Counter[str]] = defaultdict(Counter)
    last_status: dict[tuple[str, int], str] = {}
    purged_items = 0
    total = 0
    for entry in entries:
        r = entry.record
        total += 1
        by_op[r.operation] += 1
        if r.operation in SEARCH_OPS:
            searches += 1
            search_purpose[r.purpose or "(none)"] += 1
            search_actor[r.actor] += 1
            for g in dict.fromkeys(r.galleries):
                search_gallery[g] += 1
            candidates += len(r.candidates)
            with_candidates += bool(r.candidates)
        elif r.operation == AuditOp.VERIFY:
            verify_purpose[r.purpose or "(none)"] += 1
        elif r.operation == AuditOp.DOCUMENT_CHECK:
            documents.add(r.purpose, r.details)
        elif r.operation == AuditOp.REVIEW:
            verdict = str(r.details.get("verdict", "unknown"))
            verdicts[verdict] += 1
            by_reviewer[r.actor][verdict] += 1
            search_id, rank = r.details.get("search_id"), r.details.get("rank")
            if isinstance(search_id, str) and isinstance(rank, int):
                last_status[(search_id, rank)] = str(r.details.get("status", "unknown"))
        elif r.operation == AuditOp.RETENTION_PURGE:
            count = r.details.get("count")
            if isinstance(count, int) and not isinstance(count, bool):
                purged_items += count
    confirmed = sum(1 for s in last_status.values() if s == "confirmed")
    return {
        "from": format_timestamp(start),
        "to": format_timestamp(end),
        "entries": total,
        "by_operation": dict(sorted(by_op.items())),
        "searches": {
            "total": searches,
            "by_purpose": dict(sorted(search_purpose.items())),
            "by_gallery": dict(sorted(search_gallery.items())),
            "by_actor": dict(sorted(search_actor.items())),
            "candidates_returned": candidates,
            "with_candidates": with_candidates,
            "candidate_rate": with_candidates / searches if searches else None,
        },
        "verifications": {
            "total": sum(verify_purpose.values()),
            "by_purpose": dict(sorted(verify_purpose.items())),
        },
        "document_checks": documents.summary(),
        "reviews": {
            "decisions": sum(verdicts.values()),
            "by_verdict": dict(sorted(verdicts.items())),
            "by_reviewer": {k: dict(sorted(v.items())) for k, v in sorted(by_reviewer.items())},
            "leads_reviewed": len(last_status),
            "leads_confirmed": confirmed,
            "confirmation_rate": confirmed / len(last_status) if last_status else None,
        },
        "deletions": {
            "subjects_deleted": by_op[AuditOp.DELETE_SUBJECT],
            "erasure_receipts": by_op[AuditOp.ERASURE_RECEIPT],
            "retention_purges": by_op[AuditOp.RETENTION_PURGE],
            "retention_items_purged": purged_items,
        },
        "access": {
            "grants": by_op[AuditOp.GRANT],
            "revocations": by_op[AuditOp.REVOKE],
        },
    }


class _DocumentChecks:
    """Document checks: how many, why, and how often they were referred to an officer."""

    def __init__(self) -> None:
        self.by_purpose: Counter[str] = Counter()
        self.by_decision: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()

    def add(self, purpose: str | None, details: Mapping[str, Any]) -> None:
        self.by_purpose[purpose or "(none)"] += 1
        self.by_decision[str(details.get("decision", "unknown"))] += 1
        reasons = details.get("reasons")
        for reason in reasons if isinstance(reasons, list) else []:
            self.by_reason[str(reason)] += 1

    def summary(self) -> dict[str, Any]:
        total = sum(self.by_purpose.values())
        return {
            "total": total,
            "by_purpose": dict(sorted(self.by_purpose.items())),
            "by_decision": dict(sorted(self.by_decision.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
            "referral_rate": self.by_decision["refer"] / total if total else None,
        }
