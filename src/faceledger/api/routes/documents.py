"""Identity documents: read one (MRZ and portrait), and check a live face against it.

Reading is like detection: nothing is stored and nothing is audited. A check states a purpose
and a case, writes one ``document_check`` audit entry and keeps nothing (not the images, not a
template, not the names); over HTTP the document number always enters that entry as a keyed
hash (``usecases.documents``: the clear number is an operator's choice on the command line,
never a client's). The answers are the command line's ``--json`` of the same use cases.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.access import Operation, authorize, require_purpose
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.limits import read_upload
from faceledger.api.routes.common import CaseRefForm

router = APIRouter(tags=["identity documents"])


@router.post(
    "/documents/read",
    summary="Read an identity document: its MRZ, every check digit, expiry, and portrait",
)
async def read_document(
    svc: ServiceDep,
    user: UserDep,
    image: Annotated[
        UploadFile,
        File(description="Photo or scan of the passport page, ID card side or visa with the MRZ."),
    ],
) -> s.DocumentReadOut:
    """The machine-readable zone (ICAO 9303 TD1, TD2, TD3, MRV-A, MRV-B) located, read, its
    check digits recomputed, its dates parsed and the expiry judged against today; and the
    document's portrait with its quality. Nothing is stored or audited. `mrz.unchecked_fields`
    names the fields no check digit covers (names, states, sex, document type): as read,
    unverified. 422 `no_mrz` (no zone), `ambiguous_mrz` (two documents on one image),
    `unreadable_mrz`; 400 `bad_image`; 413 over the image size limit."""
    authorize(user, Operation.DETECT)
    data = await read_upload(image, svc.settings.max_image_bytes)
    done = await run_in_threadpool(uc.read_document, svc.ws, user, uc.ReadDocument(data))
    return s.DocumentReadOut.model_validate(done.as_json())


@router.post(
    "/documents/check",
    summary="Check a person against their identity document: pass, or refer to an officer",
)
async def check_document(
    svc: ServiceDep,
    user: UserDep,
    document: Annotated[
        UploadFile, File(description="Photo of the document's side with the MRZ and portrait.")
    ],
    live: Annotated[UploadFile, File(description="Photo of the person's face, taken now.")],
    purpose: Annotated[
        str | None, Form(max_length=256, description="Why this check is made (required).")
    ] = None,
    case_ref: CaseRefForm = None,
    fmr: Annotated[
        float | None,
        Form(gt=0, lt=1, description="Target false-match rate (default: the deployment's)."),
    ] = None,
) -> s.DocumentCheckOut:
    """Reads the document (MRZ, check digits, expiry), compares its portrait with the live
    face at the target FMR (1:1, with the score's estimated FMR) and gives one decision:
    `pass` only when the MRZ is valid, the document has not expired, the portrait is good
    enough and the faces match; `refer` otherwise, with every reason. One `document_check`
    audit entry records purpose, case, hashes, decision and reasons, and the document number
    only as a keyed hash (always over HTTP). Nothing else is kept. A document without a
    readable MRZ is still compared (`mrz_error`); two documents on one image are 422
    `ambiguous_mrz`, a live photo without a face 422 `no_face`."""
    authorize(user, Operation.VERIFY)
    purpose, case_ref = require_purpose(purpose, case_ref)
    limit = svc.settings.max_image_bytes
    doc = await read_upload(document, limit, "document image")
    face = await read_upload(live, limit, "live image")
    req = uc.CheckDocument(doc, face, purpose, case_ref, fmr, hash_document_number=True)
    done = await run_in_threadpool(uc.check_document, svc.ws, user, req)
    return s.DocumentCheckOut.model_validate(done.as_json())
