"""Aligned face crops for reviewers: a search's probe face and an enrolled face, each warped
onto the model's reference points (same scale), landmarks in the ``X-Landmarks`` header."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.routes.common import GalleryName
from faceledger.api.routes.searches import SearchId
from faceledger.usecases.face_views import MAX_SIZE, MIN_SIZE

router = APIRouter(tags=["search and review"])

CropSize = Annotated[
    int | None,
    Query(
        ge=MIN_SIZE,
        le=MAX_SIZE,
        description="Side of the crop in pixels (default: the model's input size).",
    ),
]

_CROP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The aligned crop as PNG. `X-Landmarks`: the five landmarks in crop "
        "pixels, `x,y` pairs joined by `;` (dlib's 5-point order); `X-Image-SHA256`: the "
        "hash of the source image.",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def crop_response(crop: uc.FaceCrop) -> Response:
    landmarks = ";".join(f"{x:.2f},{y:.2f}" for x, y in crop.landmarks)
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Image-SHA256": crop.sha256,
        "X-Landmarks": landmarks,
    }
    return Response(content=crop.png, media_type="image/png", headers=headers)


@router.get(
    "/searches/{search_id}/probe/faces/{face_index}/aligned",
    summary="A probe face aligned as the model sees it (its searcher and its reviewers)",
    response_class=Response,
    responses=_CROP_RESPONSE,
)
async def probe_face_aligned(
    search_id: SearchId,
    face_index: Annotated[int, Path(ge=0, le=10_000, description="The face's `face_index`.")],
    svc: ServiceDep,
    user: UserDep,
    size: CropSize = None,
) -> Response:
    """The face of the kept probe recorded as ``face_index``, found again by the detector and
    aligned by the engine of the search's galleries' model. Each view is audited like the
    probe's."""
    crop = await run_in_threadpool(
        uc.probe_face_crop, svc.ws, user, search_id, face_index, size=size
    )
    return crop_response(crop)


@router.get(
    "/galleries/{gallery}/templates/{template_id}/aligned",
    summary="An enrolled face aligned as the model sees it (needs a view_images grant)",
    response_class=Response,
    responses=_CROP_RESPONSE,
)
async def template_face_aligned(
    gallery: GalleryName,
    template_id: Annotated[int, Path(ge=1, le=2**62)],
    svc: ServiceDep,
    user: UserDep,
    size: CropSize = None,
) -> Response:
    """The face of a template's kept image, aligned by its gallery's engine. Each view is
    audited like the image's."""
    crop = await run_in_threadpool(
        uc.enrolled_face_crop, svc.ws, user, gallery, template_id, size=size
    )
    return crop_response(crop)
