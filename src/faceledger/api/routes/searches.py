"""1:N search with a stated purpose, the searches on record, and their human review."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.limits import read_upload
from faceledger.api.routes.common import (
    IMAGE_RESPONSE,
    CaseRefForm,
    Cursor,
    Limit,
    image_response,
    offset_cursor,
)
from faceledger.api.service import Service
from faceledger.audit import AuditEntry
from faceledger.errors import NotFound

router = APIRouter(tags=["search and review"])

SearchId = Annotated[str, Path(min_length=1, max_length=64, description="Search id.")]


@router.post("/search", summary="Search galleries for the face in an image (SearchFacesByImage)")
async def post_search(  # noqa: PLR0913 (one parameter per form field)
    svc: ServiceDep,
    user: UserDep,
    image: Annotated[UploadFile, File(description="The probe image.")],
    galleries: Annotated[list[str], Form(description="Galleries to search (repeat the field).")],
    purpose: Annotated[
        str | None, Form(max_length=256, description="Why this search is made (required).")
    ] = None,
    case_ref: CaseRefForm = None,
    k: Annotated[int | None, Form(ge=1, le=1000, description="Most candidates per face.")] = None,
    fpir: Annotated[
        float | None,
        Form(gt=0, lt=1, description="Target false-positive identification rate."),
    ] = None,
    all_faces: Annotated[bool, Form(description="Search every face, not just one.")] = False,
    faces: Annotated[
        list[int] | None,
        Form(
            description="Search only these faces: their `face_index` as `POST /detect` lists "
            "them (repeat the field). Each lead then says which face it belongs to."
        ),
    ] = None,
    keep_probe_only_with_leads: Annotated[
        bool,
        Form(
            description="Keep the probe image only if a face got candidates (the field check "
            "page's search: nothing is kept of someone who matched no one)."
        ),
    ] = False,
) -> s.SearchOut:
    """Returns leads for human review, never identifications: each candidate's score comes
    with its estimated false-match rate, and only candidates above the threshold set by the
    target FPIR are listed ("no_candidate" otherwise). The search, its purpose and its leads
    are recorded in the audit log; the probe is kept for the reviewers (with
    ``keep_probe_only_with_leads``, only when there are candidates to review)."""
    data = await read_upload(image, svc.settings.max_image_bytes)
    req = uc.SearchRequest(
        data,
        tuple(galleries),
        purpose,
        case_ref,
        k,
        fpir,
        all_faces,
        faces=None if not faces else tuple(faces),
        keep_probe_only_with_leads=keep_probe_only_with_leads,
    )
    result = await run_in_threadpool(uc.search, svc.ws, user, req)
    return convert.search_result(result)


def _record_out(svc: Service, found: uc.VisibleSearch) -> s.SearchRecordOut:
    """The record with what its scores are (normalisation, threshold), read from the search's
    audit entry: the review tables keep only the scores."""
    record = found.record
    entry: AuditEntry | None
    try:
        entry = svc.ws.audit.get(record.audit_seq)
    except NotFound:
        entry = None
    if entry is not None and not _entry_of(entry, record.search_id):
        entry = None  # not this search's entry: say nothing rather than something wrong
    return convert.search_record(
        record,
        entry=entry,
        visible_galleries=found.galleries,
        two_person_rule=svc.ws.reviews.two_person_rule,
        probe_faces=svc.images.probe_faces(record.search_id),
        blind=found.blind,
    )


def _entry_of(entry: AuditEntry, search_id: str) -> bool:
    """Whether ``entry`` recorded ``search_id``: an image search, or one lead track of a video
    search or live alert (one entry for all its tracks)."""
    details = entry.record.details
    tracks = details.get("track_search_ids")
    return details.get("search_id") == search_id or (
        isinstance(tracks, list) and search_id in tracks
    )


def _page(svc: Service, page: uc.SearchPage) -> s.SearchPage:
    nxt = None if page.next_offset is None else str(page.next_offset)
    return s.SearchPage(items=[_record_out(svc, f) for f in page.items], next_cursor=nxt)


@router.get("/searches", summary="Searches on record, newest first")
def list_searches(
    svc: ServiceDep, user: UserDep, limit: Limit = 50, cursor: Cursor = None
) -> s.SearchPage:
    """Auditors see every search; anyone else their own."""
    found = uc.list_searches(svc.ws, user, limit=limit, offset=offset_cursor(cursor))
    return _page(svc, found)


@router.get("/reviews/queue", summary="Searches with leads awaiting the caller's review")
def review_queue(
    svc: ServiceDep,
    user: UserDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    gallery: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[AwareDatetime | None, Query(description="Made at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Made before.")] = None,
) -> s.SearchPage:
    """Oldest first, a page at a time (``next_cursor``); only leads from ``gallery``, and
    searches made in ``[since, until)``, when given."""
    only = uc.QueueFilter(gallery, since, until)
    page = uc.review_queue(svc.ws, user, limit=limit, offset=offset_cursor(cursor), only=only)
    return _page(svc, page)


@router.get("/searches/{search_id}", summary="A search with its leads and their review state")
def get_search(search_id: SearchId, svc: ServiceDep, user: UserDep) -> s.SearchRecordOut:
    return _record_out(svc, uc.read_search(svc.ws, user, search_id))


@router.get(
    "/searches/{search_id}/probe",
    summary="The probe image of a search (its searcher and its reviewers)",
    response_class=Response,
    responses=IMAGE_RESPONSE,
)
def get_probe(search_id: SearchId, svc: ServiceDep, user: UserDep) -> Response:
    return image_response(uc.probe_image(svc.ws, user, search_id))


@router.post(
    "/searches/{search_id}/leads/{rank}/first-look",
    status_code=201,
    summary="Record a reviewer's first judgement of a lead's two faces, before its score",
)
def post_first_look(
    search_id: SearchId,
    rank: Annotated[int, Path(ge=1, le=1000)],
    body: s.FirstLookIn,
    svc: ServiceDep,
    user: UserDep,
) -> s.LeadOut:
    """Under blind review (on by default) a reviewer sees a lead's two faces without score,
    FMR, status or others' verdicts, records here whether they show the same person, and
    only then sees the scores and may record a verdict. Once per reviewer and lead; audited."""
    state = uc.record_first_look(svc.ws, user, uc.FirstLookAt(search_id, rank, body.judgement))
    return convert.lead(state, svc.ws.reviews.two_person_rule, svc.ws.reviews.search(search_id))


@router.post(
    "/searches/{search_id}/leads/{rank}/decisions",
    status_code=201,
    summary="Record a reviewer's verdict on one lead",
)
def post_decision(
    search_id: SearchId,
    rank: Annotated[int, Path(ge=1, le=1000)],
    body: s.DecisionIn,
    svc: ServiceDep,
    user: UserDep,
) -> s.LeadOut:
    """A searcher may not review their own search. Under the two-person rule a lead is
    ``confirmed`` only once two different reviewers confirm it; until then it is
    ``awaiting_second_confirmation``."""
    state = uc.decide_lead(svc.ws, user, uc.DecideLead(search_id, rank, body.verdict, body.note))
    return convert.lead(state, svc.ws.reviews.two_person_rule, svc.ws.reviews.search(search_id))


@router.post(
    "/searches/{search_id}/leads/{rank}/release",
    summary="Release a redacted lead to the searching organisation",
)
def post_release(
    search_id: SearchId,
    rank: Annotated[int, Path(ge=1, le=1000)],
    body: s.ReleaseIn,
    svc: ServiceDep,
    user: UserDep,
) -> s.LeadOut:
    """A reviewer of the organisation owning the lead's gallery (``view_images`` on it) lets
    the searcher see whom a lead shared under a redacted agreement names (audited, with the
    note). 409 when the lead is not redacted or was already released."""
    state = uc.release_lead(svc.ws, user, uc.ReleaseLead(search_id, rank, body.note))
    return convert.lead(state, svc.ws.reviews.two_person_rule, svc.ws.reviews.search(search_id))
