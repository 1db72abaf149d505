"""Galleries, subjects, enrolment by upload (one image or many), kept images and erasure."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.limits import filename_of, read_upload
from faceledger.api.routes.common import (
    IMAGE_RESPONSE,
    Cursor,
    GalleryName,
    Limit,
    SubjectId,
    image_response,
)
from faceledger.errors import InvalidArgument, TooLarge
from faceledger.store import LegalBasis

router = APIRouter(tags=["galleries"])

Reason = Annotated[
    str,
    Query(min_length=1, max_length=1000, description="Why (kept in the audit log)."),
]


@router.get("/galleries", summary="Galleries the caller may see")
def get_galleries(svc: ServiceDep, user: UserDep) -> s.GalleryList:
    """Administrators see every gallery; others those they hold a grant on."""
    items = [
        convert.gallery(i.gallery, i.counts, i.owner_org) for i in uc.list_galleries(svc.ws, user)
    ]
    return s.GalleryList(items=items)


@router.post("/galleries", status_code=201, summary="Create a gallery (CreateCollection)")
def post_gallery(body: s.GalleryIn, svc: ServiceDep, user: UserDep) -> s.GalleryOut:
    req = uc.CreateGallery(
        body.name, body.legal_basis, body.description, body.retention_days, body.retention_hours
    )
    info = uc.create_gallery(svc.ws, user, req)
    return convert.gallery(info.gallery, info.counts, info.owner_org)


@router.get("/galleries/{gallery}", summary="One gallery with its counts")
def get_gallery(gallery: GalleryName, svc: ServiceDep, user: UserDep) -> s.GalleryOut:
    info = uc.show_gallery(svc.ws, user, uc.ShowGallery(gallery))
    return convert.gallery(info.gallery, info.counts, info.owner_org)


@router.delete("/galleries/{gallery}", summary="Delete a gallery with everything in it")
def remove_gallery(
    gallery: GalleryName, reason: Reason, svc: ServiceDep, user: UserDep
) -> dict[str, int]:
    removed = uc.delete_gallery(svc.ws, user, uc.DeleteGallery(gallery, reason))
    return {"templates_removed": removed}


@router.get("/galleries/{gallery}/subjects", summary="Subjects of a gallery, a page at a time")
def list_subjects(
    gallery: GalleryName,
    svc: ServiceDep,
    user: UserDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> s.SubjectPage:
    page = uc.list_subjects(svc.ws, user, gallery, limit=limit, cursor=cursor)
    return s.SubjectPage(
        items=[convert.subject(x) for x in page.items], next_cursor=page.next_cursor
    )


# Subject ids may hold "/", so ``{subject:path}`` takes the rest of the path, and a route whose
# path goes on after the id must come before the bare ``/subjects/{subject:path}`` one. Only
# GET is ambiguous: GET .../subjects/x/export is the export of "x", never the detail of a
# subject "x/export" (POST .../images and .../verify have no bare POST to clash with, and
# DELETE has no suffixed route).


@router.get(
    "/galleries/{gallery}/subjects/{subject:path}/export",
    summary="Everything held on a subject (subject access request)",
)
def export(
    gallery: GalleryName, subject: SubjectId, svc: ServiceDep, user: UserDep
) -> dict[str, Any]:
    return uc.export_subject(svc.ws, user, gallery, subject)


@router.get("/galleries/{gallery}/subjects/{subject:path}", summary="A subject and its templates")
def get_subject(
    gallery: GalleryName, subject: SubjectId, svc: ServiceDep, user: UserDep
) -> s.SubjectDetail:
    """The id may contain "/" (sent as is or as %2F); one whose last part is "export" is
    read through ``.../export`` instead, which that path always means."""
    d = uc.subject_detail(svc.ws, user, gallery, subject)
    return s.SubjectDetail(
        **convert.subject(d.subject).model_dump(),
        gallery=d.gallery.name,
        templates=[convert.template(t, t.id in d.images_kept) for t in d.templates],
    )


@router.delete(
    "/galleries/{gallery}/subjects/{subject:path}",
    summary="Erase a subject: templates, kept images, index entries (DeleteFaces)",
)
def erase_subject(
    gallery: GalleryName, subject: SubjectId, reason: Reason, svc: ServiceDep, user: UserDep
) -> s.ErasureOut:
    """Writes an erasure receipt to the audit log; check it later with ``/erasures/{seq}``."""
    erased = uc.erase_subject(svc.ws, user, uc.EraseSubject(gallery, subject, reason))
    receipt = erased.receipt
    return s.ErasureOut(
        receipt_seq=receipt.audit_seq,
        gallery=receipt.gallery,
        subject=receipt.subject,
        template_ids=list(receipt.template_ids),
        image_sha256s=list(receipt.image_sha256s),
        enrolled_images_removed=erased.images_removed,
    )


@router.get(
    "/galleries/{gallery}/templates/{template_id}/image",
    summary="The kept image of an enrolled template (needs a view_images grant)",
    response_class=Response,
    responses=IMAGE_RESPONSE,
)
def template_image(
    gallery: GalleryName,
    svc: ServiceDep,
    user: UserDep,
    template_id: Annotated[int, Path(ge=1, le=2**62)],
) -> Response:
    """Each view is recorded in the audit log."""
    return image_response(uc.enrolled_image(svc.ws, user, gallery, template_id))


@router.get("/erasures/{receipt_seq}", summary="Check an erasure receipt")
def check_erasure(
    receipt_seq: Annotated[int, Path(ge=1, le=2**62)], svc: ServiceDep, user: UserDep
) -> s.ErasureCheck:
    """The chain verifies, and neither the store, the index nor the image store holds any of
    the receipt's templates or images."""
    return s.ErasureCheck.model_validate(uc.check_erasure(svc.ws, user, receipt_seq).as_json())


@router.post("/retention/apply", summary="Erase what retention periods no longer allow")
def apply_retention(
    svc: ServiceDep,
    user: UserDep,
    gallery: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> s.RetentionOut:
    """Subjects held past their gallery's period are erased (a receipt each) and kept probe
    images past theirs deleted; the run is logged (``retention_purge``). The service also
    does this on its own every few minutes (``faceledger serve --retention-interval``)."""
    with svc.retention_lock:  # not at once with the service's own timer
        done = uc.apply_retention(svc.ws, user, uc.ApplyRetention(gallery))
    return s.RetentionOut(
        receipts=[r.audit_seq for r in done.receipts],
        subjects=[f"{r.gallery}/{r.subject}" for r in done.receipts],
        probes_deleted=list(done.probes_deleted),
        cluster_sets_deleted=list(done.cluster_sets_deleted),
        failed=list(done.failed),
    )


# -- enrolment ----------------------------------------------------------------------------


def _attributes(raw: str | None) -> dict[str, str] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"attributes must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument("attributes must be a JSON object of strings")
    return {str(k): v for k, v in value.items()}


@router.post(
    "/galleries/{gallery}/subjects/{subject:path}/images",
    status_code=201,
    summary="Enrol one image of a subject (IndexFaces)",
)
async def enrol_one(
    gallery: GalleryName,
    subject: SubjectId,
    svc: ServiceDep,
    user: UserDep,
    image: Annotated[UploadFile, File(description="The image: exactly one face.")],
    display_name: Annotated[str | None, Form(max_length=400)] = None,
    legal_basis: Annotated[LegalBasis | None, Form()] = None,
    source: Annotated[str | None, Form(max_length=1000)] = None,
    attributes: Annotated[
        str | None, Form(max_length=20000, description="JSON object of strings.")
    ] = None,
) -> s.EnrolOut:
    """The subject is created on its first image. Images with no face, several faces or
    failing the quality gates are refused (422); an image already enrolled in the gallery
    is a conflict (409)."""
    data = await read_upload(image, svc.settings.max_image_bytes)
    attrs = _attributes(attributes)
    req = uc.EnrolImage(
        gallery,
        subject,
        data,
        display_name=display_name,
        attributes=attrs or {},
        legal_basis=legal_basis,
        source=source,
    )
    done = await run_in_threadpool(uc.enrol_image, svc.ws, user, req)
    return s.EnrolOut(
        gallery=gallery,
        subject=done.subject.external_id,
        template_id=done.template_id,
        image_sha256=done.image_sha256,
        face=convert.face(done.face),
        image_kept=done.image_kept,
        near_duplicates=[
            s.NearDuplicateOut.model_validate(d.as_json()) for d in done.near_duplicates
        ],
    )


def _bulk_out(done: uc.UploadsEnrolled) -> s.BulkOut:
    return s.BulkOut(
        gallery=done.gallery,
        enrolled=done.count("enrolled"),
        duplicates=done.count("duplicate"),
        rejected=done.count("rejected"),
        own_fpir_searches=done.own_fpir_searches,
        items=[
            s.BulkItemOut(
                file=i.name,
                subject=i.subject,
                status=i.status,
                template_id=i.template_id,
                code=i.code,
                detail=i.detail,
            )
            for i in done.items
        ],
    )


@router.post(
    "/galleries/{gallery}/enrolments",
    summary="Enrol several uploaded images at once",
)
async def enrol_many(
    gallery: GalleryName,
    svc: ServiceDep,
    user: UserDep,
    images: Annotated[list[UploadFile], File(description="The images, one face each.")],
    subjects: Annotated[
        list[str],
        Form(description="The subject of each image in order, or one subject for all."),
    ],
    legal_basis: Annotated[LegalBasis | None, Form()] = None,
    source: Annotated[str | None, Form(max_length=1000)] = None,
) -> s.BulkOut:
    """Each image is enrolled, skipped as a duplicate or rejected with its reason; one bad
    image never stops the others, and nothing already stored is touched."""
    if len(images) > svc.options.max_files:
        raise TooLarge(f"at most {svc.options.max_files} images in one request")
    if len(subjects) == 1:
        subjects = subjects * len(images)
    if len(subjects) != len(images):
        raise InvalidArgument(
            f"{len(images)} images but {len(subjects)} subjects: give one per image, or one"
        )
    for sub in subjects:
        if not sub.strip() or len(sub) > 200:
            raise InvalidArgument("a subject id is 1-200 characters")
    items = tuple(
        [
            uc.Upload(filename_of(f), sub, await read_upload(f, svc.settings.max_image_bytes))
            for f, sub in zip(images, subjects, strict=True)
        ]
    )
    req = uc.EnrolUploads(gallery, items, legal_basis, source)
    return _bulk_out(await run_in_threadpool(uc.enrol_uploads, svc.ws, user, req))


@router.post(
    "/galleries/{gallery}/subjects/{subject:path}/verify",
    summary="Is the face in this image the enrolled subject? (1:1)",
)
async def verify_against_subject(
    gallery: GalleryName,
    subject: SubjectId,
    svc: ServiceDep,
    user: UserDep,
    image: Annotated[UploadFile, File()],
    fmr: Annotated[float | None, Form(gt=0, lt=1, description="Target false-match rate.")] = None,
    purpose: Annotated[str | None, Form(max_length=256)] = None,
    case_ref: Annotated[str | None, Form(max_length=256)] = None,
) -> s.SubjectVerifyOut:
    data = await read_upload(image, svc.settings.max_image_bytes)
    req = uc.VerifySubject(gallery, subject, data, fmr, purpose, case_ref)
    check = await run_in_threadpool(uc.verify_subject, svc.ws, user, req)
    return s.SubjectVerifyOut(
        decision=convert.decision(check.decision),
        face=convert.face(check.face),
        gallery=gallery,
        subject=subject,
        template_id=check.template_id,
        audit_seq=check.audit_seq,
    )
