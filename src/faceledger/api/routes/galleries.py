"""Galleries, subjects, enrolment by upload (one image or many), kept images and erasure."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from faceledger.access import Operation, User, authorize
from faceledger.api import actions, convert
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
from faceledger.api.service import Service
from faceledger.errors import Conflict, InputError, InvalidArgument, NotFound, TooLarge
from faceledger.gallery import delete_gallery, export_subject
from faceledger.gallery.galleries import create_gallery, list_galleries, show_gallery
from faceledger.store import LegalBasis

router = APIRouter(tags=["galleries"])

Reason = Annotated[
    str,
    Query(min_length=1, max_length=1000, description="Why (kept in the audit log)."),
]


@router.get("/galleries", summary="Galleries the caller may see")
def get_galleries(svc: ServiceDep, user: UserDep) -> s.GalleryList:
    """Administrators see every gallery; others those they hold a grant on."""
    items = [convert.gallery(g, svc.ws.store.counts(g.id)) for g in list_galleries(svc.ws, user)]
    return s.GalleryList(items=items)


@router.post("/galleries", status_code=201, summary="Create a gallery (CreateCollection)")
def post_gallery(body: s.GalleryIn, svc: ServiceDep, user: UserDep) -> s.GalleryOut:
    g = create_gallery(
        svc.ws,
        user,
        body.name,
        legal_basis=body.legal_basis,
        description=body.description,
        retention_days=body.retention_days,
    )
    return convert.gallery(g, svc.ws.store.counts(g.id))


@router.get("/galleries/{gallery}", summary="One gallery with its counts")
def get_gallery(gallery: GalleryName, svc: ServiceDep, user: UserDep) -> s.GalleryOut:
    info = show_gallery(svc.ws, user, gallery)
    return convert.gallery(info.gallery, info.counts)


@router.delete("/galleries/{gallery}", summary="Delete a gallery with everything in it")
def remove_gallery(
    gallery: GalleryName, reason: Reason, svc: ServiceDep, user: UserDep
) -> dict[str, int]:
    authorize(user, Operation.GALLERY_MANAGE, gallery)
    removed = delete_gallery(svc.ws, user, gallery, reason=reason)
    return {"templates_removed": removed}


@router.get("/galleries/{gallery}/subjects", summary="Subjects of a gallery, a page at a time")
def list_subjects(
    gallery: GalleryName,
    svc: ServiceDep,
    user: UserDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> s.SubjectPage:
    authorize(user, Operation.LIST_SUBJECTS, gallery)
    g = svc.ws.store.get_gallery_by_name(gallery)
    if cursor is not None and (not cursor.isdigit() or len(cursor) > 18):
        raise InvalidArgument(f"malformed page cursor {cursor!r}")
    page = svc.ws.store.list_subjects(g.id, limit=limit, cursor=cursor or None)
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
    authorize(user, Operation.VIEW_IMAGES, gallery)
    data = export_subject(svc.ws, user, gallery, subject)
    ids = [int(t["id"]) for t in data.get("templates", []) if isinstance(t, dict)]
    data["enrolled_images_kept"] = sorted(svc.images.held(ids))
    return data


@router.get("/galleries/{gallery}/subjects/{subject:path}", summary="A subject and its templates")
def get_subject(
    gallery: GalleryName, subject: SubjectId, svc: ServiceDep, user: UserDep
) -> s.SubjectDetail:
    """The id may contain "/" (sent as is or as %2F); one whose last part is "export" is
    read through ``.../export`` instead, which that path always means."""
    authorize(user, Operation.LIST_SUBJECTS, gallery)
    g = svc.ws.store.get_gallery_by_name(gallery)
    found = svc.ws.store.find_subject(g.id, subject)
    if found is None:
        raise NotFound(f"no subject {subject!r} in gallery {g.name!r}")
    infos = svc.ws.store.list_templates(found.id)
    kept = svc.images.held(t.id for t in infos)
    base = convert.subject(found).model_dump()
    return s.SubjectDetail(
        **base, gallery=g.name, templates=[convert.template(t, t.id in kept) for t in infos]
    )


@router.delete(
    "/galleries/{gallery}/subjects/{subject:path}",
    summary="Erase a subject: templates, kept images, index entries (DeleteFaces)",
)
def erase_subject(
    gallery: GalleryName, subject: SubjectId, reason: Reason, svc: ServiceDep, user: UserDep
) -> s.ErasureOut:
    """Writes an erasure receipt to the audit log; check it later with ``/erasures/{seq}``."""
    receipt, images = actions.erase_subject(svc, user, gallery, subject, reason)
    return s.ErasureOut(
        receipt_seq=receipt.audit_seq,
        gallery=receipt.gallery,
        subject=receipt.subject,
        template_ids=list(receipt.template_ids),
        image_sha256s=list(receipt.image_sha256s),
        enrolled_images_removed=images,
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
    return image_response(actions.enrolled_image(svc, user, gallery, template_id))


@router.get("/erasures/{receipt_seq}", summary="Check an erasure receipt")
def check_erasure(
    receipt_seq: Annotated[int, Path(ge=1, le=2**62)], svc: ServiceDep, user: UserDep
) -> s.ErasureCheck:
    """The chain verifies, and neither the store, the index nor the image store holds any of
    the receipt's templates or images."""
    authorize(user, Operation.AUDIT_READ)
    return s.ErasureCheck(**actions.check_erasure(svc, receipt_seq))


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


def _enrolled(gallery: str, e: actions.Enrolled) -> s.EnrolOut:
    return s.EnrolOut(
        gallery=gallery,
        subject=e.result.subject.external_id,
        template_id=e.result.template_id,
        image_sha256=e.image_sha256,
        face=convert.face(e.result.face),
        image_kept=e.image_kept,
    )


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
    done = await run_in_threadpool(
        actions.enrol_upload,
        svc,
        user,
        gallery,
        subject,
        data,
        display_name=display_name,
        attributes=attrs,
        legal_basis=legal_basis,
        source=source,
    )
    return _enrolled(gallery, done)


def _enrol_many(
    svc: Service,
    user: User,
    gallery: str,
    files: list[tuple[str, bytes]],
    subjects: list[str],
    legal_basis: LegalBasis | None,
    source: str | None,
) -> s.BulkOut:
    authorize(user, Operation.ENROL, gallery)
    svc.ws.store.get_gallery_by_name(gallery)
    items: list[s.BulkItemOut] = []
    for (name, data), subject in zip(files, subjects, strict=True):
        try:
            done = actions.enrol_upload(
                svc, user, gallery, subject, data, legal_basis=legal_basis, source=source
            )
        except Conflict as exc:
            items.append(
                s.BulkItemOut(
                    file=name,
                    subject=subject,
                    status="duplicate",
                    code=exc.code,
                    detail=exc.message,
                )
            )
        except InputError as exc:
            items.append(
                s.BulkItemOut(
                    file=name,
                    subject=subject,
                    status="rejected",
                    code=exc.code,
                    detail=exc.message,
                )
            )
        else:
            items.append(
                s.BulkItemOut(
                    file=name,
                    subject=subject,
                    status="enrolled",
                    template_id=done.result.template_id,
                )
            )
    return s.BulkOut(
        gallery=gallery,
        enrolled=sum(i.status == "enrolled" for i in items),
        duplicates=sum(i.status == "duplicate" for i in items),
        rejected=sum(i.status == "rejected" for i in items),
        items=items,
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
    files = [(filename_of(f), await read_upload(f, svc.settings.max_image_bytes)) for f in images]
    return await run_in_threadpool(
        _enrol_many, svc, user, gallery, files, subjects, legal_basis, source
    )


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
    check = await run_in_threadpool(
        actions.verify_subject,
        svc,
        user,
        gallery,
        subject,
        data,
        fmr=fmr,
        purpose=purpose,
        case_ref=case_ref,
    )
    return s.SubjectVerifyOut(
        decision=convert.decision(check.decision),
        face=convert.face(check.face),
        gallery=gallery,
        subject=subject,
        template_id=check.template_id,
        audit_seq=check.audit_seq,
    )
