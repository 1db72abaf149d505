"""Video search as a job: upload a video (202), poll its status and result, or cancel it.

Everything that can be checked at once is checked before a job is accepted: the purpose and
case, the caller's right to search each gallery (the use case's own authorisation), the size
of the upload and whether it is a video that decodes. The search itself then runs on the
service's video worker pool (:mod:`faceledger.api.jobs`; in memory only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from faceledger import usecases as uc
from faceledger.access import User, require_purpose
from faceledger.api import convert
from faceledger.api import schemas as s
from faceledger.api.deps import ServiceDep, UserDep
from faceledger.api.jobs import Work, save_upload
from faceledger.api.routes.common import CaseRefForm
from faceledger.api.service import Service
from faceledger.usecases.search import search_terms
from faceledger.usecases.video_render import result_json
from faceledger.video import ScanSettings, probe_video

router = APIRouter(tags=["video search"])

JobId = Annotated[str, Path(min_length=1, max_length=64, description="Video search job id.")]

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the search runs as a job; poll `status_url`.",
        "headers": {
            "Location": {
                "description": "The job's status URL.",
                "schema": {"type": "string"},
            }
        },
    }
}


@dataclass(frozen=True)
class VideoForm:
    """The form fields of a video search besides the video itself."""

    galleries: tuple[str, ...]
    purpose: str | None
    case_ref: str | None
    fpir: float | None
    k: int | None
    sample_fps: float | None


def video_form(
    galleries: Annotated[list[str], Form(description="Galleries to search (repeat the field).")],
    purpose: Annotated[
        str | None, Form(max_length=256, description="Why this search is made (required).")
    ] = None,
    case_ref: CaseRefForm = None,
    fpir: Annotated[
        float | None,
        Form(gt=0, lt=1, description="Target false-positive identification rate per track."),
    ] = None,
    k: Annotated[int | None, Form(ge=1, le=1000, description="Most candidates per track.")] = None,
    sample_fps: Annotated[
        float | None,
        Form(ge=0.1, le=120, description="Frames examined per second of video (default 5)."),
    ] = None,
) -> VideoForm:
    return VideoForm(tuple(galleries), purpose, case_ref, fpir, k, sample_fps)


@router.post(
    "/video-searches",
    status_code=202,
    summary="Search a recorded video against galleries, as a job (202, then poll)",
    responses=ACCEPTED,
)
async def post_video_search(
    request: Request,
    response: Response,
    svc: ServiceDep,
    user: UserDep,
    video: Annotated[UploadFile, File(description="The video (mp4, mov, mkv, avi, webm, ogg).")],
    form: Annotated[VideoForm, Depends(video_form)],
) -> s.VideoJobAccepted:
    """Every person tracked in the video is searched once, at the target FPIR; tracks
    without a candidate are discarded. Refused at once (no job) without a purpose and case
    (422), without the right to search a gallery (403), for an upload over the limit (413)
    or one that is not a decodable video (400), or while too many searches wait (429).
    When the job is done, its result lists the lead tracks, each with a review record
    (`search_id`), and the expected false alerts; one audit entry records the search."""
    purpose, case_ref = require_purpose(form.purpose, form.case_ref)
    scan = ScanSettings() if form.sample_fps is None else ScanSettings(sample_fps=form.sample_fps)
    # the search's own checks (grants, k, FPIR), without fixing its operating point: the job
    # does that when it starts, on the galleries as they are then
    await run_in_threadpool(search_terms, svc.ws, user, form.galleries, form.k, form.fpir)
    jobs = svc.video_jobs
    jobs.check_room()
    limits = svc.video_limits
    upload = jobs.upload_path()
    try:
        await video.seek(0)
        await run_in_threadpool(save_upload, video.file, upload, limits.max_bytes)
        info = await run_in_threadpool(probe_video, upload, limits)
        req = uc.VideoSearchRequest(
            upload,
            form.galleries,
            purpose,
            case_ref,
            form.fpir,
            form.k,
            scan,
            limits,
            keep_faces=svc.settings.keep_probe_images,
        )
        job = jobs.submit(user, form.galleries, info, upload, _work(svc, user, req))
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    url = str(request.app.url_path_for("get_video_search", job_id=job.id))
    response.headers["Location"] = url
    return s.VideoJobAccepted(job_id=job.id, status=job.state, status_url=url)


def _work(svc: Service, user: User, req: uc.VideoSearchRequest) -> Work:
    """The job's search, run as the user is when it starts (roles and grants re-read: a job
    may wait in the queue), its result as the command line's JSON."""

    def run(
        cancel: threading.Event, progress: Callable[[uc.VideoProgress], None]
    ) -> dict[str, Any]:
        actor = svc.ws.access.get_user(user.id)
        res = uc.search_video(svc.ws, actor, req, progress=progress, cancel=cancel)
        return result_json(res)

    return run


@router.get(
    "/video-searches/{job_id}",
    summary="A video search job: status, progress and, when done, its result",
)
def get_video_search(job_id: JobId, svc: ServiceDep, user: UserDep) -> s.VideoJobOut:
    """Only the job's creator (and auditors) may read it; to anyone else it does not exist.
    Jobs live in the service's memory: a restart forgets them (what a finished search
    recorded stays in the audit log and the review records)."""
    return convert.video_job(svc.video_jobs.get(job_id, user))


@router.delete(
    "/video-searches/{job_id}",
    status_code=202,
    summary="Cancel a queued or running video search job",
)
def cancel_video_search(job_id: JobId, svc: ServiceDep, user: UserDep) -> s.VideoJobOut:
    """A queued job is cancelled at once; a running one stops at its next frame and ends
    `cancelled` with nothing recorded. 409 once the job has ended."""
    return convert.video_job(svc.video_jobs.cancel(job_id, user))
