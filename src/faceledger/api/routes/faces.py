"""Detection and 1:1 verification of uploaded images (DetectFaces, CompareFaces)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.access import Operation, User, authorize
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.limits import read_upload
from faceledger.api.service import Service

router = APIRouter(tags=["faces"])


def _detect(svc: Service, user: User, data: bytes) -> s.DetectOut:
    authorize(user, Operation.DETECT)
    engine = svc.ws.engine
    img = engine.load(data)
    faces = engine.detect(img)
    return s.DetectOut(
        image_sha256=img.sha256,
        width=img.width,
        height=img.height,
        faces=[convert.face(f) for f in faces],
    )


@router.post("/detect", summary="Every face in an image with its quality report")
async def detect(
    svc: ServiceDep, user: UserDep, image: Annotated[UploadFile, File()]
) -> s.DetectOut:
    """Faces largest first; ``quality.flags`` names the enrolment gates each face fails."""
    data = await read_upload(image, svc.settings.max_image_bytes)
    return await run_in_threadpool(_detect, svc, user, data)


@router.post("/verify", summary="Are the faces of two images the same person? (1:1)")
async def verify(
    svc: ServiceDep,
    user: UserDep,
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
    fmr: Annotated[float | None, Form(gt=0, lt=1, description="Target false-match rate.")] = None,
    purpose: Annotated[str | None, Form(max_length=256)] = None,
    case_ref: Annotated[str | None, Form(max_length=256)] = None,
) -> s.VerifyOut:
    """The decision states the score with its estimated false-match rate and the threshold of
    the target rate; the comparison is recorded in the audit log."""
    a = await read_upload(image_a, svc.settings.max_image_bytes)
    b = await read_upload(image_b, svc.settings.max_image_bytes)
    req = uc.VerifyPair(a, b, fmr, purpose, case_ref)
    done = await run_in_threadpool(uc.verify_pair, svc.ws, user, req)
    return s.VerifyOut(
        decision=convert.decision(done.result.decision),
        faces=[convert.face(done.result.a), convert.face(done.result.b)],
        audit_seq=done.audit_seq,
    )
