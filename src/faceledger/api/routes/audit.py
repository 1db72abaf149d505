"""The audit log (auditors): entries, chain verification, JSONL export, use report; and the
evaluation reports kept in the reports folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.access import Operation, User, authorize
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.report_schemas import OrgReportOut
from faceledger.api.routes.common import Cursor, Limit
from faceledger.api.service import Service
from faceledger.errors import InvalidArgument, NotFound

router = APIRouter(tags=["audit"])

When = Annotated[
    str | None, Query(max_length=40, description="ISO 8601 date or date-time (UTC if no zone).")
]
Operation_ = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Actor = Annotated[str | None, Query(min_length=1, max_length=256)]


def _when(text: str | None, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{name}: not an ISO 8601 date/time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not datetime(1970, 1, 2, tzinfo=UTC) <= moment <= datetime(9000, 1, 1, tzinfo=UTC):
        raise InvalidArgument(f"{name}: {text!r} is out of range")
    return moment


def _after(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidArgument(f"malformed page cursor {cursor!r}")
    return int(cursor)


def _entries(
    svc: Service,
    user: User,
    limit: int,
    after: int,
    operation: str | None,
    actor: str | None,
    start: datetime | None,
    end: datetime | None,
) -> s.AuditPage:
    found = list(
        uc.audit_entries(
            svc.ws,
            user,
            uc.AuditQuery(
                start, end, operation=operation, actor=actor, after_seq=after, limit=limit + 1
            ),
        )
    )
    page = found[:limit]
    more = len(found) > limit
    return s.AuditPage(
        items=[convert.audit_entry(e) for e in page],
        next_cursor=str(page[-1].seq) if more and page else None,
    )


@router.get("/audit/entries", summary="Audit entries in order, a page at a time")
def audit_entries(
    svc: ServiceDep,
    user: UserDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    operation: Operation_ = None,
    actor: Actor = None,
    start: Annotated[When, Query(alias="from")] = None,
    end: Annotated[When, Query(alias="to")] = None,
) -> s.AuditPage:
    return _entries(
        svc,
        user,
        limit,
        _after(cursor),
        operation,
        actor,
        _when(start, "from"),
        _when(end, "to"),
    )


@router.get("/audit/entries/{seq}", summary="One audit entry")
def audit_entry(
    seq: Annotated[int, Path(ge=1, le=2**62)], svc: ServiceDep, user: UserDep
) -> s.AuditEntryOut:
    """An entry that does not concern the auditor's organisation is not found (404)."""
    return convert.audit_entry(uc.audit_entry(svc.ws, user, seq))


@router.get("/audit/verify", summary="Verify the whole hash chain")
def audit_verify(svc: ServiceDep, user: UserDep) -> s.AuditVerifyOut:
    """Detects any edited, dropped, inserted or reordered entry and truncation; names the
    first bad position. An organisation's auditor gets the same report on the whole chain
    (it shows no entry)."""
    return convert.verify_report(uc.verify_chain(svc.ws, user, uc.VerifyChain()))


@router.get("/audit/head", summary="The chain head (keep copies elsewhere)")
def audit_head(svc: ServiceDep, user: UserDep) -> s.ChainHeadOut:
    authorize(user, Operation.AUDIT_READ)
    head = svc.ws.audit.head()
    return s.ChainHeadOut(
        seq=head.seq, hash=head.hash, signature=head.signature, signer=head.signer
    )


def _export_file(svc: Service, user: User, start: datetime | None, end: datetime | None) -> IO[str]:
    fp = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - streamed, then closed
    try:
        uc.export_audit(svc.ws, user, cast("IO[str]", fp), start, end)  # type: ignore[arg-type]
        fp.seek(0)
    except BaseException:
        fp.close()
        raise
    return fp


def _lines(fp: IO[str]) -> Iterator[bytes]:
    try:
        while chunk := fp.read(64 * 1024):
            yield chunk.encode("utf-8")
    finally:
        fp.close()


@router.get(
    "/audit/export",
    summary="Export entries as JSON lines (verifiable without the database)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def audit_export(
    svc: ServiceDep,
    user: UserDep,
    start: Annotated[When, Query(alias="from")] = None,
    end: Annotated[When, Query(alias="to")] = None,
) -> StreamingResponse:
    """An organisation's auditor gets its view: entries that do not concern it are stubs
    (``{"seq", "prev_hash", "hash", "signature", "withheld": true}``), so it still verifies."""
    authorize(user, Operation.AUDIT_READ)
    fp = await run_in_threadpool(_export_file, svc, user, _when(start, "from"), _when(end, "to"))
    return StreamingResponse(
        _lines(fp),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )


@router.get("/audit/report", summary="Use of the engine over a period")
def audit_report(
    svc: ServiceDep,
    user: UserDep,
    start: Annotated[When, Query(alias="from")] = None,
    end: Annotated[When, Query(alias="to")] = None,
) -> dict[str, object]:
    """Searches by purpose and gallery, candidate and confirmation rates, reviewers,
    deletions; by default the last 30 days (an organisation's auditor: over its entries)."""
    authorize(user, Operation.AUDIT_READ)
    since, until = _period(start, end)
    return uc.audit_use_report(svc.ws, user, since, until)


def _period(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    until = _when(end, "to") or datetime.now(UTC) + timedelta(seconds=1)
    since = _when(start, "from") or until - timedelta(days=30)
    if since >= until:
        raise InvalidArgument("'from' must be before 'to'")
    return since, until


OrgName = Annotated[str | None, Query(min_length=1, max_length=64)]
AgreementId = Annotated[str | None, Query(min_length=1, max_length=32)]
ReportFormat = Annotated[Literal["json", "html"], Query()]


@router.get(
    "/audit/report/orgs",
    summary="Lead rates of an organisation or agreement over a period",
    response_model=OrgReportOut,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def audit_org_report(
    svc: ServiceDep,
    user: UserDep,
    org: OrgName = None,
    start: Annotated[When, Query(alias="from")] = None,
    end: Annotated[When, Query(alias="to")] = None,
    agreement: AgreementId = None,
    format: ReportFormat = "json",
) -> Any:
    """Searches, faces searched, searches with leads, review outcomes, lead and
    confirmed-lead rates (Wilson 95 % intervals), median hours to the first decision; as
    owner, as requester, by requesting organisation and by agreement. By default the last 30
    days of the auditor's own organisation (the deployment: all). An organisation's auditor
    reports only on it or on an agreement it is party to."""
    since, until = _period(start, end)
    report = uc.org_report(svc.ws, user, uc.OrgReportRequest(org, since, until, agreement))
    if format == "html":
        return HTMLResponse(
            uc.render_org_report_html(report),
            headers={
                "Content-Security-Policy": (
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
                ),
                "X-Content-Type-Options": "nosniff",
            },
        )
    return OrgReportOut.of(report.to_json())


# -- evaluation reports --------------------------------------------------------------------


def _reports(svc: Service) -> dict[str, s.ReportInfo]:
    """The HTML reports in the reports folder, by file name (the only names ever served)."""
    folder = svc.reports_dir
    found: dict[str, s.ReportInfo] = {}
    if not folder.is_dir():
        return found
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() == ".html" and p.is_file() and not p.is_symlink():
            st = p.stat()
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            found[p.name] = s.ReportInfo(
                name=p.name, size_bytes=st.st_size, modified_at=convert.iso(modified)
            )
    return found


@router.get("/reports", summary="Evaluation reports kept by this service", tags=["reports"])
def list_reports(svc: ServiceDep, user: UserDep) -> s.ReportList:
    """HTML reports written by ``faceledger eval ... --report`` into the reports folder."""
    authorize(user, Operation.EVALUATE)
    return s.ReportList(items=list(_reports(svc).values()))


@router.get(
    "/reports/{name}",
    summary="One evaluation report (self-contained HTML)",
    response_class=HTMLResponse,
    tags=["reports"],
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def get_report(
    name: Annotated[str, Path(min_length=1, max_length=255)], svc: ServiceDep, user: UserDep
) -> HTMLResponse:
    """Only a name from the listing is served; a client never names a path."""
    authorize(user, Operation.EVALUATE)
    if name not in _reports(svc):
        raise NotFound(f"no report named {name!r}")
    path = svc.reports_dir / name
    return HTMLResponse(
        path.read_text(encoding="utf-8", errors="replace"),
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )
