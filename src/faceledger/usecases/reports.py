"""Lead-rate reports per organisation and per sharing agreement over a period (auditors).

For an organisation: every search it made and every search of a gallery it owns, split into
its role as owner (others' searches of its galleries) and as requester (its own searches),
by requesting organisation and by agreement. For an agreement: the searches of the gallery
it shares. Figures: searches, faces searched, searches with leads, leads, review outcomes per
lead status, the lead rate and confirmed-lead rate (Wilson 95 % intervals), and the median
time from a search to the first decision on one of its leads. An auditor of an organisation
reports on their own organisation or on an agreement it is party to; the deployment itself
(an actor with no organisation) on anything.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from faceledger.access import Operation, User, authorize
from faceledger.audit.records import format_timestamp
from faceledger.errors import InvalidArgument, NotFound, PermissionDenied
from faceledger.evaluate.intervals import wilson
from faceledger.gallery.workspace import Workspace
from faceledger.review.model import LeadStatus
from faceledger.review.stats import GalleryUse, SearchFacts, search_facts

NO_AGREEMENT = "none"
"""The ``by_agreement`` key of galleries searched under no agreement (the requester's own)."""


@dataclass(frozen=True)
class OrgReportRequest:
    org: str | None
    """The organisation reported on; None: the auditor's own (the deployment: every one)."""
    start: datetime
    end: datetime
    agreement_id: str | None = None
    """Only the searches of the gallery this agreement shares."""


@dataclass(frozen=True)
class Rate:
    k: int
    n: int
    low: float
    high: float
    """The Wilson 95 % interval."""

    @property
    def value(self) -> float | None:
        return None if self.n == 0 else self.k / self.n

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "value": self.value, "ci95": [self.low, self.high]}


def _rate(k: int, n: int) -> Rate:
    low, high = wilson(k, n)
    return Rate(k, n, low, high)


@dataclass(frozen=True)
class Figures:
    searches: int
    faces: int
    searches_with_leads: int
    leads: int
    outcomes: dict[str, int]
    """Leads per status (every status named, zeros included)."""
    lead_rate: Rate
    confirmed_rate: Rate
    """Searches with at least one confirmed lead, over searches."""
    median_hours_to_first_decision: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "searches": self.searches,
            "faces": self.faces,
            "searches_with_leads": self.searches_with_leads,
            "leads": self.leads,
            "outcomes": dict(self.outcomes),
            "lead_rate": self.lead_rate.to_json(),
            "confirmed_lead_rate": self.confirmed_rate.to_json(),
            "median_hours_to_first_decision": self.median_hours_to_first_decision,
        }


@dataclass(frozen=True)
class Week:
    start: datetime
    """Monday 00:00 UTC."""
    searches: int
    with_leads: int
    with_confirmed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "week": self.start.date().isoformat(),
            "searches": self.searches,
            "searches_with_leads": self.with_leads,
            "searches_with_confirmed": self.with_confirmed,
        }


@dataclass(frozen=True)
class OrgReport:
    org: str | None
    agreement_id: str | None
    start: datetime
    end: datetime
    total: Figures
    as_owner: Figures | None
    """Others' searches of the organisation's galleries (None when no organisation)."""
    as_requester: Figures | None
    """The organisation's own searches (None when no organisation)."""
    by_requester: dict[str, Figures] = field(default_factory=dict)
    by_agreement: dict[str, Figures] = field(default_factory=dict)
    """By agreement id; :data:`NO_AGREEMENT` for galleries searched under none."""
    weekly: tuple[Week, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "agreement_id": self.agreement_id,
            "from": format_timestamp(self.start),
            "to": format_timestamp(self.end),
            "total": self.total.to_json(),
            "as_owner": None if self.as_owner is None else self.as_owner.to_json(),
            "as_requester": None if self.as_requester is None else self.as_requester.to_json(),
            "by_requester": {k: v.to_json() for k, v in self.by_requester.items()},
            "by_agreement": {k: v.to_json() for k, v in self.by_agreement.items()},
            "weekly": [w.to_json() for w in self.weekly],
        }


UsePredicate = Callable[[SearchFacts, GalleryUse], bool]


def _requested_by(org: str) -> UsePredicate:
    return lambda f, u: f.requester_org == org


def _under(agreement: str) -> UsePredicate:
    return lambda f, u: (u.agreement_id or NO_AGREEMENT) == agreement


def _figures(facts: Sequence[SearchFacts], keep: UsePredicate) -> Figures:
    outcomes = {str(s): 0 for s in LeadStatus}
    searches = with_leads = with_confirmed = leads = 0
    entries: dict[int, int] = {}
    waits: list[float] = []
    for f in facts:
        uses = [u for u in f.uses if keep(f, u)]
        if not uses:
            continue
        searches += 1
        entries[f.audit_seq] = f.faces
        statuses = [s for u in uses for s in u.statuses]
        leads += len(statuses)
        for s in statuses:
            outcomes[str(s)] += 1
        with_leads += bool(statuses)
        with_confirmed += LeadStatus.CONFIRMED in statuses
        firsts = [u.first_decision for u in uses if u.first_decision is not None]
        if firsts:
            waits.append((min(firsts) - f.created_at).total_seconds() / 3600.0)
    return Figures(
        searches=searches,
        faces=sum(entries.values()),
        searches_with_leads=with_leads,
        leads=leads,
        outcomes=outcomes,
        lead_rate=_rate(with_leads, searches),
        confirmed_rate=_rate(with_confirmed, searches),
        median_hours_to_first_decision=statistics.median(waits) if waits else None,
    )


def _weekly(facts: Iterable[SearchFacts]) -> tuple[Week, ...]:
    counts: defaultdict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    for f in facts:
        day = f.created_at.astimezone(UTC)
        monday = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=day.weekday())
        statuses = [s for u in f.uses for s in u.statuses]
        row = counts[monday]
        row[0] += 1
        row[1] += bool(statuses)
        row[2] += LeadStatus.CONFIRMED in statuses
    return tuple(Week(k, *counts[k]) for k in sorted(counts))


def _scope(ws: Workspace, actor: User, req: OrgReportRequest) -> str | None:
    """The organisation to report on, after checking the actor may."""
    org = req.org
    if req.agreement_id is not None:
        try:
            agreement = ws.orgs.agreement(req.agreement_id)
        except NotFound:
            raise NotFound(f"no agreement {req.agreement_id!r}") from None
        parties = (agreement.owner_org, agreement.terms.grantee_org)
        if actor.org is not None and actor.org not in parties:
            raise PermissionDenied(
                f"user {actor.id!r} of {actor.org!r} may not report on agreement "
                f"{req.agreement_id!r}, to which {actor.org!r} is not a party"
            )
        if org is None and actor.org is not None:
            return None  # every search under the agreement concerns the actor's organisation
    if org is None:
        return actor.org
    if actor.org is not None and actor.org != org:
        raise PermissionDenied(
            f"user {actor.id!r} of {actor.org!r} may not report on organisation {org!r}"
        )
    if org not in {o.id for o in ws.orgs.orgs()}:
        raise NotFound(f"no organisation {org!r}")
    return org


def org_report(ws: Workspace, actor: User, req: OrgReportRequest) -> OrgReport:
    """Lead rates of ``req.org`` (or of ``req.agreement_id``) over ``[start, end)``."""
    authorize(actor, Operation.AUDIT_READ)
    for moment in (req.start, req.end):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidArgument("report periods need timezone-aware times")
    if req.start >= req.end:
        raise InvalidArgument("'from' must be before 'to'")
    org = _scope(ws, actor, req)
    facts = search_facts(
        ws.reviews, ws.audit, req.start, req.end, org=org, agreement_id=req.agreement_id
    )
    requesters = sorted({f.requester_org for f in facts})
    agreements = sorted({u.agreement_id or NO_AGREEMENT for f in facts for u in f.uses})
    as_owner = as_requester = None
    if org is not None:
        as_owner = _figures(facts, lambda f, u: u.owner_org == org and f.requester_org != org)
        as_requester = _figures(facts, lambda f, u: f.requester_org == org)
    return OrgReport(
        org=org,
        agreement_id=req.agreement_id,
        start=req.start,
        end=req.end,
        total=_figures(facts, lambda f, u: True),
        as_owner=as_owner,
        as_requester=as_requester,
        by_requester={r: _figures(facts, _requested_by(r)) for r in requesters},
        by_agreement={a: _figures(facts, _under(a)) for a in agreements},
        weekly=_weekly(facts),
    )


# -- HTML ---------------------------------------------------------------------------------


def _weekly_png(weeks: Sequence[Week]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if weeks:
        x = np.array([w.start.date() for w in weeks], dtype="datetime64[D]")
        ax.plot(x, [w.searches for w in weeks], marker="o", label="searches")
        ax.plot(x, [w.with_leads for w in weeks], marker="s", label="with leads")
        ax.plot(x, [w.with_confirmed for w in weeks], marker="^", label="with a confirmed lead")
        ax.set_xlabel("week (Monday, UTC)")
        ax.set_ylabel("searches")
        ax.legend(loc="upper left")
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no search in the period", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Searches per week")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _pct(rate: Rate) -> str:
    if rate.value is None:
        return "–"
    return f"{100 * rate.value:.1f} % ({100 * rate.low:.1f}–{100 * rate.high:.1f})"


_COLUMNS = (
    "searches",
    "faces",
    "with leads",
    "leads",
    "lead rate (95 % CI)",
    "confirmed-lead rate (95 % CI)",
    "median h to 1st decision",
)


def _row(label: str, f: Figures) -> str:
    hours = (
        "–"
        if f.median_hours_to_first_decision is None
        else (f"{f.median_hours_to_first_decision:.1f}")
    )
    cells = [
        label,
        str(f.searches),
        str(f.faces),
        str(f.searches_with_leads),
        str(f.leads),
        _pct(f.lead_rate),
        _pct(f.confirmed_rate),
        hours,
    ]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _table(title: str, rows: Sequence[tuple[str, Figures]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("", *_COLUMNS))
    body = "".join(_row(label, f) for label, f in rows) or (
        f'<tr><td colspan="{len(_COLUMNS) + 1}">none</td></tr>'
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _outcomes(rows: Sequence[tuple[str, Figures]]) -> str:
    statuses = [str(s) for s in LeadStatus]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("", *statuses))
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(label)}</td>"
        + "".join(f"<td>{f.outcomes.get(s, 0)}</td>" for s in statuses)
        + "</tr>"
        for label, f in rows
    )
    return f"<h2>Review outcomes (leads)</h2><table><tr>{head}</tr>{body}</table>"


def render_org_report_html(report: OrgReport) -> str:
    """A self-contained HTML page (inline style, the plot as a data: PNG), every value
    escaped."""
    who = report.org or "every organisation"
    if report.agreement_id is not None:
        who = f"{who}, agreement {report.agreement_id}"
    title = f"Lead rates: {who}"
    main: list[tuple[str, Figures]] = [("all", report.total)]
    if report.as_owner is not None:
        main.append(("as owner (others' searches of its galleries)", report.as_owner))
    if report.as_requester is not None:
        main.append(("as requester (its own searches)", report.as_requester))
    png = base64.b64encode(_weekly_png(report.weekly)).decode("ascii")
    period = f"{format_timestamp(report.start)} to {format_timestamp(report.end)}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(period)} (end excluded)</p>"
        + _table("Summary", main)
        + _outcomes(main)
        + _table("By requesting organisation", list(report.by_requester.items()))
        + _table("By agreement", list(report.by_agreement.items()))
        + "<h2>Per week</h2>"
        + f'<img alt="searches per week" src="data:image/png;base64,{png}">'
        + "</body></html>"
    )
