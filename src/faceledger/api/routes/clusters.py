"""Clustering of uploaded faces (which of these unknown faces are the same person?) and the
review of a kept cluster set: merge, split, name, dismiss, undo, enrol (docs/clustering.md).

The clustering use case reads images from files: the uploads are written to a private
temporary directory (mode 0700) for the request and removed with it before the answer.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.access import Operation, User, authorize
from faceledger.api import cluster_schemas as cs
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.jobs import save_upload
from faceledger.api.limits import filename_of
from faceledger.api.routes.common import CaseRefForm
from faceledger.api.service import Service
from faceledger.errors import TooLarge
from faceledger.review.cluster_sets import ClusterSet
from faceledger.usecases.clustering import DEFAULT_CLUSTER_FMR
from faceledger.video.kind import is_video_file

router = APIRouter(tags=["clustering"])

SetId = Annotated[str, Path(min_length=1, max_length=64, description="Cluster set id.")]
FaceNo = Annotated[int, Path(ge=0, le=1_000_000, description="A face of the set, by number.")]

_JPEG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The face's kept crop as JPEG.",
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _cluster_uploads(
    svc: Service, user: User, uploads: list[tuple[str, BinaryIO]], req: uc.ClusterImages
) -> dict[str, Any]:
    """Cluster ``uploads`` (name, file) from files of a temporary directory removed before
    returning; faces and unreadable files are named by the uploaded file's name. An image
    may be as large as an image upload, a video as a video upload. Nothing is written for a
    caller the use case would refuse."""
    authorize(user, Operation.DETECT)
    image_max, video_max = svc.settings.max_image_bytes, svc.video_limits.max_bytes
    with tempfile.TemporaryDirectory(prefix="faceledger-cluster-") as tmp:
        names: dict[str, str] = {}
        paths = []
        for i, (name, source) in enumerate(uploads):
            path = FsPath(tmp) / f"{i:05d}"
            save_upload(source, path, max(image_max, video_max))
            if path.stat().st_size > image_max and not is_video_file(path):
                raise TooLarge(f"the image {name} is larger than {image_max:,} bytes")
            names[str(path)] = name
            paths.append(path)
        req = replace(req, images=tuple(paths), video_limits=svc.video_limits)
        res = uc.cluster_images(svc.ws, user, req)
    body = uc.clusters_json(res)
    for key in ("faces", "unreadable"):
        for item in cast("list[dict[str, Any]]", body[key]):
            item["image"] = names.get(item["image"], "")
    return body


@router.post("/clusterings", summary="Group the faces of uploaded images into identities")
async def post_clustering(
    svc: ServiceDep,
    user: UserDep,
    images: Annotated[
        list[UploadFile],
        File(
            description="The images and videos (repeat the field); a video's faces arrive "
            "as tracks, one clustered face each."
        ),
    ],
    purpose: Annotated[
        str | None, Form(max_length=256, description="Why the faces are clustered (required).")
    ] = None,
    case_ref: CaseRefForm = None,
    fmr: Annotated[
        float | None,
        Form(gt=0, lt=1, description="Target false-match rate of a link between two faces."),
    ] = None,
    keep: Annotated[
        bool,
        Form(description="Keep the result as a cluster set for review (`/cluster-sets/{id}`)."),
    ] = False,
) -> cs.ClusteringOut:
    """Every face of every image is embedded; two faces of one image are never put together;
    low-quality faces never start a cluster; close calls are listed as ambiguous. One audit
    entry (who, why, the images' sha256s, counts, threshold): no template, no membership.
    Nothing is stored unless ``keep``; the uploads are deleted before the answer."""
    if len(images) > svc.options.max_files:
        raise TooLarge(f"at most {svc.options.max_files} images in one request")
    for f in images:
        await f.seek(0)
    uploads = [(filename_of(f), f.file) for f in images]
    target = DEFAULT_CLUSTER_FMR if fmr is None else fmr
    req = uc.ClusterImages((), purpose, case_ref, target, keep=keep)
    body = await run_in_threadpool(_cluster_uploads, svc, user, uploads, req)
    return cs.ClusteringOut.model_validate(body)


def _set_out(found: ClusterSet) -> cs.ClusterSetOut:
    return cs.ClusterSetOut.model_validate(uc.cluster_set_json(found))


@router.get("/cluster-sets", summary="The kept cluster sets one may read, newest first")
def list_cluster_sets(
    svc: ServiceDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 100,
) -> list[cs.ClusterSetSummaryOut]:
    """Those the caller kept and, for a reviewer, those of their organisation: who, why,
    when, how many faces and clusters (no face). Those who may cluster."""
    found = uc.list_cluster_sets(svc.ws, user, limit)
    return [cs.ClusterSetSummaryOut.model_validate(uc.cluster_set_summary_json(s)) for s in found]


@router.get("/cluster-sets/{set_id}", summary="A kept cluster set")
def get_cluster_set(set_id: SetId, svc: ServiceDep, user: UserDep) -> cs.ClusterSetOut:
    """Its faces (no template, no crop), clusters with labels and dismissals, and review
    actions. Its creator and the reviewers of the creator's organisation."""
    return _set_out(uc.show_cluster_set(svc.ws, user, set_id))


@router.get(
    "/cluster-sets/{set_id}/faces/{face}/crop",
    summary="The kept crop of one face of a set (for a contact sheet)",
    response_class=Response,
    responses=_JPEG_RESPONSE,
)
async def get_face_crop(set_id: SetId, face: FaceNo, svc: ServiceDep, user: UserDep) -> Response:
    """Those who may read the set; each view audited as ``cluster_face_view`` (as other
    image views). 404 when the set keeps no crop of the face."""
    jpeg = await run_in_threadpool(uc.cluster_face_crop, svc.ws, user, set_id, face)
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return Response(content=jpeg, media_type="image/jpeg", headers=headers)


@router.post("/cluster-sets/{set_id}/merge", summary="Merge one cluster into another")
def post_merge(set_id: SetId, body: cs.MergeIn, svc: ServiceDep, user: UserDep) -> cs.ClusterSetOut:
    """409 ``conflict`` when it would put two faces of one image together. Audited."""
    return _set_out(uc.merge_clusters(svc.ws, user, set_id, body.into, body.other))


@router.post("/cluster-sets/{set_id}/split", summary="Move faces of a cluster to a new one")
def post_split(set_id: SetId, body: cs.SplitIn, svc: ServiceDep, user: UserDep) -> cs.ClusterSetOut:
    """At least one face stays in the cluster. Audited."""
    faces = tuple(body.faces)
    return _set_out(uc.split_cluster(svc.ws, user, set_id, body.cluster, faces))


@router.post("/cluster-sets/{set_id}/name", summary="Label a cluster (a note, not an identity)")
def post_name(set_id: SetId, body: cs.NameIn, svc: ServiceDep, user: UserDep) -> cs.ClusterSetOut:
    return _set_out(uc.name_cluster(svc.ws, user, set_id, body.cluster, body.label))


@router.post("/cluster-sets/{set_id}/dismiss", summary="Reject a cluster as a person")
def post_dismiss(
    set_id: SetId, body: cs.DismissIn, svc: ServiceDep, user: UserDep
) -> cs.ClusterSetOut:
    """A dismissed cluster can no longer be enrolled (until undone). Audited."""
    return _set_out(uc.dismiss_cluster(svc.ws, user, set_id, body.cluster, body.reason))


@router.post("/cluster-sets/{set_id}/undo", summary="Undo the set's last review action")
def post_undo(set_id: SetId, svc: ServiceDep, user: UserDep) -> cs.ClusterSetOut:
    """409 when there is nothing to undo, or the last action is an enrolment (erase the
    subject instead)."""
    return _set_out(uc.undo_cluster_action(svc.ws, user, set_id))


@router.post(
    "/cluster-sets/{set_id}/enrol",
    status_code=201,
    summary="Enrol a reviewed cluster as a subject of a gallery",
)
def post_enrol(
    set_id: SetId, body: cs.EnrolClusterIn, svc: ServiceDep, user: UserDep
) -> cs.ClusterEnrolledOut:
    """Its faces passing the quality gates are enrolled as they were computed (no image is
    kept in the gallery), audited with the set and the legal basis. Someone allowed to
    enrol in the gallery who may also read the set; 409 for a dismissed cluster, a model
    other than the gallery's, or no face passing the gates."""
    req = uc.EnrolCluster(
        set_id, body.cluster, body.gallery, body.subject, body.legal_basis, body.note
    )
    done = uc.enrol_cluster(svc.ws, user, req)
    return cs.ClusterEnrolledOut(
        gallery=body.gallery,
        subject=done.subject.external_id,
        template_ids=list(done.template_ids),
        faces=list(done.face_nos),
        audit_seq=done.audit_seq,
    )
