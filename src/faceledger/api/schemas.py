"""Request and response bodies of the REST API (pydantic), with examples for the OpenAPI page.

Every score travels with its estimated false-match rate (``fmr``) from the model's
calibration table: a bare similarity means nothing to a reader and is never shown alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from faceledger.access import GrantLevel, Role
from faceledger.review import LeadStatus, Verdict
from faceledger.store import LegalBasis
from faceledger.store.validate import GALLERY_NAME, MAX_RETENTION_DAYS, MAX_RETENTION_HOURS

NAME = r"^[^\x00-\x20\x7f-\xa0](?:[^\x00-\x1f]{0,198}[^\x00-\x20\x7f-\xa0])?$"
"""A name or id: 1-200 characters, no control characters, no space at either end."""
USER_ID = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
SHA_A = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SHA_B = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- problems and pages --------------------------------------------------------------------


class Problem(Model):
    """An error (RFC 9457). ``code`` is stable; ``detail`` is for people."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:faceledger:problem:no_face",
                    "title": "Unprocessable content",
                    "status": 422,
                    "code": "no_face",
                    "detail": "no face found in the probe image",
                    "instance": "/api/v1/search",
                }
            ]
        },
    )
    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None


class Health(Model):
    status: Literal["ok"]
    version: str
    model_id: str
    database: str
    users: bool = Field(description="Whether any user exists (false: bootstrap one first).")


# -- users, grants, keys -------------------------------------------------------------------


class UserOut(Model):
    id: str
    display_name: str
    roles: list[Role]
    grants: dict[str, GrantLevel]
    active: bool
    org: str | None = Field(
        default=None, description="The user's organisation (null: the deployment itself)."
    )


class UserIn(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"id": "rev.alice", "roles": ["reviewer"], "display_name": "Alice"}]
        },
    )
    id: str = Field(min_length=1, max_length=64, pattern=USER_ID)
    roles: list[Role] = Field(min_length=1)
    display_name: str = Field(default="", max_length=200)
    org: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=USER_ID,
        description="The organisation of the new user (default: the creator's).",
    )


class KeyIn(Model):
    label: str = Field(default="", max_length=200)


class IssuedKeyOut(Model):
    key_id: str
    user_id: str
    token: str = Field(description="Shown once; only its argon2 hash is stored.")


class KeyInfoOut(Model):
    key_id: str
    user_id: str
    label: str
    created_at: str
    revoked_at: str | None


class GrantIn(Model):
    level: GrantLevel


class GrantOut(Model):
    user_id: str
    gallery: str
    level: GrantLevel


# -- galleries and subjects ----------------------------------------------------------------


class GalleryIn(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "watchlist-2024",
                    "legal_basis": "warrant",
                    "description": "Persons sought under court orders",
                    "retention_days": 365,
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=100, pattern=GALLERY_NAME)
    legal_basis: LegalBasis
    description: str = Field(default="", max_length=2000)
    retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    retention_hours: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_HOURS,
        description="A retention period in hours instead of days (not both), for galleries "
        "that must be gone within the day; the service enforces it in the background.",
    )

    @model_validator(mode="after")
    def one_retention_unit(self) -> GalleryIn:
        if self.retention_days is not None and self.retention_hours is not None:
            raise ValueError("give a retention period in days or in hours, not both")
        return self


class GalleryOut(Model):
    name: str
    owner_org: str | None = Field(default=None, description="The organisation owning it.")
    description: str
    model_id: str
    legal_basis: LegalBasis
    retention_days: int | None
    retention_hours: int | None
    created_at: str
    created_by: str
    subjects: int | None = None
    templates: int | None = None


class SubjectOut(Model):
    external_id: str
    display_name: str | None
    attributes: dict[str, Any]
    legal_basis: LegalBasis
    source: str | None
    enrolled_at: str
    enrolled_by: str


class QualityOut(Model):
    score: float
    flags: list[str]
    face_width_px: float
    inter_eye_px: float
    sharpness: float
    brightness: float
    contrast: float
    clipped_fraction: float
    yaw_deg: float
    roll_deg: float


class TemplateOut(Model):
    id: int
    image_sha256: str
    model_id: str
    quality_score: float | None
    quality_flags: list[str]
    created_at: str
    image_kept: bool


class SubjectDetail(SubjectOut):
    gallery: str
    templates: list[TemplateOut]


class SubjectPage(Model):
    items: list[SubjectOut]
    next_cursor: str | None


class GalleryList(Model):
    items: list[GalleryOut]
    next_cursor: str | None = None


class ErasureOut(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "receipt_seq": 42,
                    "gallery": "watchlist-2024",
                    "subject": "P-1001",
                    "template_ids": [17, 18],
                    "image_sha256s": [
                        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                    ],
                    "enrolled_images_removed": 2,
                }
            ]
        },
    )
    receipt_seq: int = Field(description="Audit entry of the erasure receipt.")
    gallery: str
    subject: str
    template_ids: list[int]
    image_sha256s: list[str]
    enrolled_images_removed: int = Field(
        description="Kept images erased with the templates (same transaction, by cascade)."
    )


class RetentionOut(Model):
    receipts: list[int] = Field(description="Audit entries of the erasure receipts written.")
    subjects: list[str] = Field(description="`gallery/subject` of each subject erased.")
    probes_deleted: list[str] = Field(description="Searches whose kept probe was deleted.")
    cluster_sets_deleted: list[str] = Field(
        default_factory=list, description="Kept cluster sets past their retention, deleted."
    )
    failed: list[str] = Field(
        default_factory=list,
        description="`gallery/subject: why` of expired subjects that could not be erased.",
    )


class ErasureCheck(Model):
    model_config = ConfigDict(extra="allow")
    ok: bool
    receipt_seq: int
    enrolled_images_still_held: list[str]


# -- faces, enrolment, verification --------------------------------------------------------


class BoxOut(Model):
    left: float
    top: float
    right: float
    bottom: float


class FaceOut(Model):
    box: BoxOut
    confidence: float
    detector: str
    quality: QualityOut
    face_index: int = Field(
        0, description="This face's position among the image's detections (from 0)."
    )
    faces_in_image: int = Field(1, description="How many faces the detector found.")
    selection: str | None = Field(
        None,
        description="The policy that picked this face for a one-face operation "
        "(primary, largest, central, only); null when every face was used. The other "
        "faces_in_image - 1 faces were then not compared or searched.",
    )


class DetectOut(Model):
    image_sha256: str
    width: int
    height: int
    faces: list[FaceOut]


class NearDuplicateOut(Model):
    subject: str
    other_subject: str
    score: float
    fmr: float = Field(description="Estimated false-match rate of the score.")
    other_template_id: int | None


class EnrolOut(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "gallery": "watchlist-2024",
                    "subject": "P-1001",
                    "template_id": 17,
                    "image_sha256": SHA_A,
                    "face": {
                        "box": {"left": 180.0, "top": 210.0, "right": 420.0, "bottom": 450.0},
                        "confidence": 0.97,
                        "detector": "hog",
                        "quality": {
                            "score": 88.0,
                            "flags": [],
                            "face_width_px": 240.0,
                            "inter_eye_px": 96.0,
                            "sharpness": 120.0,
                            "brightness": 130.0,
                            "contrast": 45.0,
                            "clipped_fraction": 0.01,
                            "yaw_deg": 3.0,
                            "roll_deg": 1.0,
                        },
                    },
                    "image_kept": True,
                }
            ]
        },
    )
    gallery: str
    subject: str
    template_id: int
    image_sha256: str
    face: FaceOut
    image_kept: bool
    near_duplicates: list[NearDuplicateOut] = Field(
        default_factory=list,
        description="Other subjects of the gallery whose face this is, by a score above "
        "the threshold at the deployment's near_duplicate_fmr (enrolled anyway; a deployment "
        "set to refuse answers 409 near_duplicate instead).",
    )


class BulkItemOut(Model):
    file: str
    subject: str
    status: Literal["enrolled", "duplicate", "rejected"]
    template_id: int | None = None
    code: str | None = Field(default=None, description="Error code when not enrolled.")
    detail: str | None = None


class BulkOut(Model):
    gallery: str
    enrolled: int
    duplicates: int
    rejected: int
    items: list[BulkItemOut]
    own_fpir_searches: int | None = Field(
        default=None,
        description="Members searched with their own subject left out when the grown "
        "gallery's own FPIR was counted after this enrolment (null: not counted).",
    )


class FmrOut(Model):
    value: float = Field(description="Estimated false-match rate of the score (one comparison).")
    upper_bound: bool = Field(description="True: the rate is only known to be below value.")
    impostor_pairs: int = Field(description="Impostor comparisons the estimate rests on.")


class DecisionOut(Model):
    outcome: Literal["match", "no_match"]
    score: float
    fmr: FmrOut
    target_fmr: float
    threshold: float
    model_id: str


class VerifyOut(Model):
    decision: DecisionOut
    faces: list[FaceOut]
    audit_seq: int


class SubjectVerifyOut(Model):
    decision: DecisionOut
    face: FaceOut
    gallery: str
    subject: str
    template_id: int
    audit_seq: int


# -- search and review ---------------------------------------------------------------------


Normalisation = Literal["asnorm", "none"]
"""How a search scored: ``asnorm`` (adaptive symmetric normalisation of the cosine against a
cohort of the searched galleries' own templates) or ``none`` (the cosine similarity itself)."""


class CandidateOut(Model):
    rank: int
    gallery: str
    subject: str
    display_name: str | None
    score: float = Field(
        description="The score the threshold applies to and candidates are ranked by. When the "
        "face's `normalisation` is `asnorm` it is an AS-normalised score: not a cosine, not "
        "bounded by ±1, comparable only with this search's `threshold`; when it is `none` it "
        "is the cosine similarity (equal to `similarity`)."
    )
    similarity: float | None = Field(
        description="The raw cosine similarity behind `score`, in [-1, 1], whatever the "
        "normalisation: of the probe face and the matched template (`template_id`), or of the "
        "subject's mean template when the service fuses a subject's templates. Null if not "
        "measured."
    )
    fmr: FmrOut
    fpir: float | None = Field(
        description="Estimated chance that a search of this many templates "
        "(`templates_searched`) for someone not enrolled returns a candidate scoring at least "
        "`score`: counted on the gallery's own members when the face's `threshold_source` is "
        "`gallery`, else 1 - (1 - fmr)^templates. Null if not estimated."
    )
    template_id: int


class FaceCandidatesOut(Model):
    face: FaceOut
    outcome: Literal["candidates", "no_candidate"]
    normalisation: Normalisation = Field(
        description="`asnorm`: `score` and `threshold` are AS-normalised scores (galleries "
        "searched together hold at least the calibration's cohort size of templates); "
        "`none`: they are cosine similarities."
    )
    threshold: float = Field(
        description="Least `score` a candidate needs, on the same scale as `score` (see "
        "`normalisation`), set so that the search meets its `target_fpir`."
    )
    threshold_extrapolated: bool = Field(
        description="True: the threshold's per-comparison FMR is below what the calibration's "
        "impostor pairs measured, so it comes from the calibration's fitted tail model rather "
        "than from counted pairs."
    )
    comparison_fmr: float = Field(
        description="Per-comparison false-match rate the threshold is set at: the rate at "
        "which `templates_searched` independent comparisons give the target FPIR, "
        "1 - (1 - target_fpir)^(1/templates)."
    )
    threshold_source: Literal["gallery", "model card"] = Field(
        description="`gallery`: the threshold was counted on the searched galleries' own "
        "members (each searched against the rest, its own subject left out: the share whose "
        "best score reaches the threshold is the target FPIR); `model card`: it comes from the "
        "model card's calibration (galleries with too few subjects to count the target rate)."
    )
    candidates: list[CandidateOut]


class SearchOut(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "search_id": "4b7c0e1f9a2d4e6b8c0d2f4a6b8c0e1f",
                    "audit_seq": 57,
                    "probe_sha256": SHA_B,
                    "galleries": ["watchlist-2024"],
                    "model_id": "dlib-resnet-v1",
                    "target_fpir": 0.01,
                    "templates_searched": 204,
                    "probe_kept": True,
                    "faces": [],
                }
            ]
        },
    )
    search_id: str
    audit_seq: int
    probe_sha256: str
    galleries: list[str]
    model_id: str
    target_fpir: float
    templates_searched: int
    probe_kept: bool
    faces: list[FaceCandidatesOut]
    gallery_owners: dict[str, str] = Field(
        default_factory=dict, description="The organisation owning each gallery searched."
    )
    redacted_galleries: list[str] = Field(
        default_factory=list,
        description="Galleries whose leads name no subject (`[redacted]`, `template_id` 0) "
        "until a reviewer of their owner releases them.",
    )


class FirstLookIn(Model):
    judgement: Literal["same", "different", "unsure"] = Field(
        description="Whether the two faces show the same person, judged before any score."
    )


class DecisionIn(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"verdict": "confirmed", "note": "same ear shape and scar on the chin"}]
        },
    )
    verdict: Verdict
    note: str = Field(min_length=1, max_length=4000)


class ReviewDecisionOut(Model):
    reviewer: str
    verdict: Verdict
    note: str
    decided_at: str
    audit_seq: int


class FirstLookOut(Model):
    reviewer: str
    judgement: Literal["same", "different", "unsure"]
    looked_at: str
    audit_seq: int


class LeadOut(Model):
    rank: int
    gallery: str
    subject: str
    template_id: int | None
    blind: bool = Field(
        default=False,
        description="True: the caller is to look at the two faces first (`POST .../first-look`);"
        " until then score, FMR, status, other reviewers' looks and verdicts are withheld "
        "(null or empty).",
    )
    face_index: int | None = Field(
        default=None, description="The probe face this lead belongs to (null: the only one)."
    )
    score: float | None = Field(
        description="The candidate's score as the search ranked it: AS-normalised (not a "
        "cosine) when the search's `normalisation` is `asnorm`, the cosine similarity when "
        "it is `none`. Null while `blind`."
    )
    fmr: float | None
    fmr_upper_bound: bool
    status: LeadStatus | None = Field(description="Null while `blind`.")
    open: bool
    confirmed_by: list[str]
    confirmations_needed: int | None = Field(description="Null while `blind`.")
    decisions: list[ReviewDecisionOut]
    first_looks: list[FirstLookOut] = Field(
        default_factory=list,
        description="Each reviewer's judgement of the two faces before seeing the score.",
    )
    owner_org: str = Field(description="The organisation owning the lead's gallery.")
    redacted: bool = Field(
        description="True: the subject is hidden from this reader (`subject` is `[redacted]`) "
        "until a reviewer of `owner_org` releases the lead."
    )
    withheld: bool = Field(
        description="True while the owner withholds the subject from the searching "
        "organisation (redacted and not released), whoever reads it."
    )
    released_by: str | None = Field(description="Who released the redacted lead, if anyone.")
    released_at: str | None


class TrackSpanOut(Model):
    track_id: int
    start_s: float = Field(description="When the track was first seen, in seconds of video.")
    end_s: float = Field(description="When it was last seen.")
    faces_seen: int | None = Field(default=None, description="Faces of it on sampled frames.")
    faces_used: int | None = Field(
        default=None, description="Its best faces fused into the template that was searched."
    )


class TrackFaceTimeOut(Model):
    time_s: float | None = Field(description="When this face was seen, in seconds of video.")
    frame: int | None = Field(description="The frame it was taken from (from 0).")


class VideoContextOut(Model):
    """Where a lead track of a video search (or a live alert) lies in its video."""

    kind: Literal["video_search", "video_alert"] = Field(
        description="`video_search`: one lead track of a recorded video searched as a whole; "
        "`video_alert`: a track of a live source, alerted as it was seen."
    )
    video_sha256: str | None = Field(description="Of the video file (null for a live source).")
    duration_s: float | None = Field(
        description="The video's declared duration; null when unknown (a live source)."
    )
    track: TrackSpanOut = Field(description="This review record's track.")
    other_tracks: list[TrackSpanOut] = Field(
        description="The other lead tracks of the same video search (each its own record)."
    )
    tracks_searched: int | None = Field(
        description="Tracks of the video searched (with a lead or not); null for an alert."
    )
    expected_false_alerts: float | None = Field(
        description="Tracks searched × target FPIR: how many lead tracks chance alone should "
        "give when nobody in the video is enrolled; null for an alert."
    )
    faces: list[TrackFaceTimeOut] = Field(
        description="When each of the kept best faces (`probe_faces`, same order) was seen."
    )


class SearchRecordOut(Model):
    search_id: str
    actor: str
    created_at: str
    purpose: str
    case_ref: str
    galleries: list[str]
    model_id: str | None
    audit_seq: int
    normalisation: Normalisation | None = Field(
        description="What the leads' `score` is: `asnorm` (AS-normalised, not a cosine) or "
        "`none` (cosine similarity), as recorded in the search's audit entry; null when the "
        "entry does not say."
    )
    threshold: float | None = Field(
        description="The threshold the search applied, on the scale of the leads' `score`."
    )
    two_person_rule: bool
    probe_faces: list[FaceOut] | None
    leads: list[LeadOut]
    leads_hidden: int = Field(description="Leads in galleries the caller holds no grant on.")
    requester_org: str = Field(description="The organisation of the searcher.")
    gallery_owners: dict[str, str] = Field(
        description="The organisation owning each gallery shown (a partner's auditor sees only "
        "its own galleries of the search)."
    )
    redacted_galleries: list[str] = Field(
        description="Galleries shown whose leads their owner withholds until released."
    )
    video: VideoContextOut | None = Field(
        default=None,
        description="For one lead track of a video search or live alert: its place in the "
        "video; its probe image is then a strip of the track's best faces. Null for an image "
        "search.",
    )


class SearchPage(Model):
    items: list[SearchRecordOut]
    next_cursor: str | None


# -- audit ---------------------------------------------------------------------------------


class AuditEntryOut(Model):
    seq: int
    timestamp: str
    actor: str
    operation: str
    purpose: str | None
    case_ref: str | None
    galleries: list[str]
    model_id: str | None
    threshold: float | None
    target_fmr: float | None
    target_fpir: float | None
    probe_sha256: str | None
    candidates: list[dict[str, Any]]
    details: dict[str, Any]
    hash: str
    prev_hash: str
    signed: bool


class AuditPage(Model):
    items: list[AuditEntryOut]
    next_cursor: str | None


class ChainHeadOut(Model):
    seq: int
    hash: str
    signature: str | None
    signer: str | None


class AuditVerifyOut(Model):
    ok: bool
    entries: int
    first_bad_position: int | None
    reason: str | None
    head: ChainHeadOut | None
    signed_entries: int


class ReportInfo(Model):
    name: str
    size_bytes: int
    modified_at: str


class ReportList(Model):
    items: list[ReportInfo]
    next_cursor: str | None = None


# -- video search jobs ---------------------------------------------------------------------


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class VideoJobAccepted(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "job_id": "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
                    "status": "queued",
                    "status_url": "/api/v1/video-searches/0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
                }
            ]
        },
    )
    job_id: str
    status: JobStatus
    status_url: str = Field(description="Where to poll the job (also the Location header).")


class VideoInfoOut(Model):
    sha256: str | None
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float | None
    frames: int | None


class VideoJobProgressOut(Model):
    fraction: float | None = Field(
        description="Share of the video read (0-1); null while its duration is unknown."
    )
    seconds_read: float
    duration_s: float | None
    frames_sampled: int
    tracks_searched: int
    tracks_with_leads: int


class JobErrorOut(Model):
    code: str = Field(description="The stable error code, as in problem documents.")
    message: str


class VideoJobOut(Model):
    job_id: str
    status: JobStatus
    actor: str
    galleries: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool = Field(
        description="A cancel was asked for; a running job ends `cancelled` at its next frame "
        "(or `done` if it had already read its last frame)."
    )
    video: VideoInfoOut = Field(description="The uploaded video, as probed when accepted.")
    progress: VideoJobProgressOut
    result: dict[str, Any] | None = Field(
        description="When `done`: the video search's result, the same JSON as the command "
        "line's `video search --json` (tracks, leads, expected false alerts, audit entry)."
    )
    error: JobErrorOut | None = Field(description="When `failed`: why.")


# -- identity documents --------------------------------------------------------------------


MrzFormatName = Literal["TD1", "TD2", "TD3", "MRVA", "MRVB"]
CheckReasonName = Literal[
    "mrz_invalid", "expired", "no_portrait", "low_quality", "no_match", "match"
]

_MRZ_EXAMPLE: dict[str, Any] = {
    "format": "TD3",
    "valid": True,
    "lines": [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F3404159<<<<<<<<<<<<<<<4",
    ],
    "fields": {
        "document_type": "P",
        "issuing_state": "UTO",
        "document_number": "L898902C3",
        "nationality": "UTO",
        "birth_date": "740812",
        "sex": "F",
        "expiry_date": "340415",
        "surname": "ERIKSSON",
        "given_names": "ANNA MARIA",
        "personal_number": "",
        "optional_data_2": "",
        "birth_date_iso": "1974-08-12",
        "expiry_date_iso": "2034-04-15",
    },
    "checks": [
        {"name": "document_number", "expected": "6", "read": "6", "ok": True},
        {"name": "birth_date", "expected": "2", "read": "2", "ok": True},
        {"name": "expiry_date", "expected": "9", "read": "9", "ok": True},
        {"name": "personal_number", "expected": "0", "read": "<", "ok": True},
        {"name": "composite", "expected": "4", "read": "4", "ok": True},
    ],
    "corrections": [],
    "expired": False,
    "zone": {
        "quad": [[60.0, 700.0], [1190.0, 700.0], [1190.0, 810.0], [60.0, 810.0]],
        "angle": 0.0,
    },
    "seconds": 0.61,
    "doubtful": [],
    "unchecked_fields": [
        "document_type",
        "given_names",
        "issuing_state",
        "nationality",
        "sex",
        "surname",
    ],
}
_PORTRAIT_EXAMPLE: dict[str, Any] = {
    "box": {"left": 313.0, "top": 413.0, "right": 493.0, "bottom": 593.0},
    "faces_on_document": 1,
    "quality": {
        "score": 100.0,
        "passes": True,
        "flags": [],
        "inter_eye_px": 70.5,
        "face_width_px": 180.0,
    },
    "small": False,
    "notes": [],
}


class MrzFieldsOut(Model):
    """The MRZ's fields as printed, without fillers (names with spaces)."""

    document_type: str
    issuing_state: str
    document_number: str
    nationality: str
    birth_date: str = Field(description="YYMMDD as printed.")
    sex: str = Field(description="`M`, `F` or `<` (unspecified), as printed.")
    expiry_date: str = Field(description="YYMMDD as printed.")
    surname: str
    given_names: str
    personal_number: str = Field(
        description="TD3's personal number, TD1's first optional data, TD2's and the visas' "
        "optional data."
    )
    optional_data_2: str = Field(description="TD1's second optional data; empty otherwise.")
    birth_date_iso: str | None = Field(description="The birth date, when it is a calendar date.")
    expiry_date_iso: str | None = Field(description="The expiry date, when it is one.")


class MrzCheckOut(Model):
    name: str = Field(
        description="The field the check digit protects (`document_number`, `birth_date`, "
        "`expiry_date`, `personal_number`), or `composite`."
    )
    expected: str = Field(description="The digit computed from the characters read.")
    read: str = Field(description="The character printed in the check digit's position.")
    ok: bool


class MrzZoneOut(Model):
    quad: list[list[float]] = Field(
        description="The zone's corners in the image, in reading order (top-left of the text "
        "first), as [x, y] pixels."
    )
    angle: float = Field(description="Direction of the text, degrees counter-clockwise.")


class MrzOut(Model):
    """The machine-readable zone as read, every check digit recomputed."""

    format: MrzFormatName
    valid: bool = Field(
        description="Every check digit passes, the dates are calendar dates and the sex is one "
        "ICAO allows. Vouches for nothing in `unchecked_fields`."
    )
    lines: list[str] = Field(description="The zone's lines after confirmed corrections.")
    fields: MrzFieldsOut
    checks: list[MrzCheckOut]
    corrections: list[str] = Field(
        description="OCR corrections made, each confirmed by the check digits."
    )
    expired: bool | None = Field(
        description="The expiry date is before today (null: no valid expiry date)."
    )
    zone: MrzZoneOut
    seconds: float = Field(description="Time spent locating and reading the zone.")
    unchecked_fields: list[str] = Field(
        description="Fields no check digit covers in this format (names, states, sex, "
        "document type; a visa's optional data): as read, never verified."
    )
    doubtful: list[list[int]] = Field(
        default_factory=list,
        description="[line, column] positions (from 0) in unchecked fields where the OCR and "
        "the OCR-B glyph templates disagree: the character there may be wrong even when "
        "`valid`.",
    )


class PortraitQualityOut(Model):
    score: float
    passes: bool = Field(description="Whether the portrait face passes the quality gates.")
    flags: list[str]
    inter_eye_px: float
    face_width_px: float


class PortraitOut(Model):
    """The document's portrait: its largest face outside the MRZ."""

    box: BoxOut
    faces_on_document: int = Field(description="Faces found on the document (a ghost image too).")
    quality: PortraitQualityOut
    small: bool = Field(
        description="Under 60 px between the eyes: the comparison's false non-match rate is "
        "raised, and a check names `low_quality`."
    )
    notes: list[str] = Field(description="What a reader should know of this portrait.")


class DocumentReadOut(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "image_sha256": SHA_A,
                    "mrz": _MRZ_EXAMPLE,
                    "portrait": _PORTRAIT_EXAMPLE,
                    "seconds": 1.42,
                }
            ]
        },
    )
    image_sha256: str
    mrz: MrzOut
    portrait: PortraitOut | None = Field(description="Null when the document shows no face.")
    seconds: float


class LiveQualityOut(Model):
    score: float
    passes: bool = Field(description="Whether the live face passes the quality gates.")
    flags: list[str]


class LiveFaceOut(Model):
    quality: LiveQualityOut


class DocumentComparisonOut(Model):
    """The live face against the document's portrait (1:1)."""

    outcome: Literal["match", "no_match"]
    score: float = Field(description="Cosine similarity of the two faces' templates.")
    fmr: float = Field(description="Estimated false-match rate of the score (one comparison).")
    fmr_upper_bound: bool = Field(
        description="True: the rate is only known to be below `fmr` (the score is beyond "
        "every impostor pair of the calibration)."
    )
    target_fmr: float
    threshold: float = Field(description="The least score of a match at `target_fmr`.")


class DocumentCheckOut(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "decision": "pass",
                    "reasons": ["match"],
                    "mrz": _MRZ_EXAMPLE,
                    "mrz_error": None,
                    "portrait": _PORTRAIT_EXAMPLE,
                    "live": {"quality": {"score": 100.0, "passes": True, "flags": []}},
                    "comparison": {
                        "outcome": "match",
                        "score": 0.984708,
                        "fmr": 1.6e-06,
                        "fmr_upper_bound": True,
                        "target_fmr": 0.001,
                        "threshold": 0.935491,
                    },
                    "document_sha256": SHA_A,
                    "live_sha256": SHA_B,
                    "audit_seq": 58,
                    "seconds": 1.29,
                }
            ]
        },
    )
    decision: Literal["pass", "refer"] = Field(
        description="`pass` only when the only reason is `match`; `refer` (to an officer) "
        "otherwise. Never an identification."
    )
    reasons: list[CheckReasonName] = Field(
        description="Every reason that applies: `mrz_invalid` (no MRZ, unreadable, or a check "
        "fails), `expired`, `no_portrait`, `low_quality` (a small portrait, or a live face "
        "failing the quality gates), `no_match`, `match`."
    )
    mrz: MrzOut | None = Field(description="Null when no MRZ could be read (`mrz_error`).")
    mrz_error: str | None = Field(description="`no_mrz` or `unreadable_mrz`; null when read.")
    portrait: PortraitOut | None = Field(description="Null when the document shows no face.")
    live: LiveFaceOut
    comparison: DocumentComparisonOut | None = Field(
        description="Null when there was no portrait to compare with."
    )
    document_sha256: str
    live_sha256: str
    audit_seq: int = Field(description="The check's audit entry.")
    seconds: float


# -- organisations and sharing agreements --------------------------------------------------

ShareLevel = Literal["search", "view_images"]
AgreementStateName = Literal["pending", "active", "expired", "revoked"]


class OrgIn(Model):
    org_id: str = Field(min_length=1, max_length=64, pattern=USER_ID)
    display_name: str = Field(default="", max_length=256)


class OrgOut(Model):
    org_id: str
    display_name: str
    created_at: str | None = Field(
        description="Null for the default organisation of a workspace made before "
        "organisations existed."
    )


class PurposeIn(Model):
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=4000)


class PurposeOut(Model):
    org: str
    name: str
    description: str


class AgreementIn(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "gallery": "watchlist",
                    "grantee_org": "county",
                    "purposes": ["violent felony investigation"],
                    "legal_basis": "data sharing agreement DSA-2025-07",
                    "starts_at": "2025-01-01T00:00:00Z",
                    "expires_at": "2026-01-01T00:00:00Z",
                    "level": "search",
                    "max_candidates": 5,
                    "redacted": True,
                }
            ]
        },
    )
    gallery: str = Field(min_length=1, max_length=200)
    grantee_org: str = Field(min_length=1, max_length=64)
    purposes: list[str] = Field(min_length=1, max_length=100)
    legal_basis: str = Field(min_length=1, max_length=4000)
    starts_at: AwareDatetime
    expires_at: AwareDatetime
    level: ShareLevel = "search"
    max_candidates: int | None = Field(default=None, ge=1, le=1000)
    redacted: bool = False


class AgreementChangeIn(Model):
    purposes: list[str] | None = Field(default=None, min_length=1, max_length=100)
    legal_basis: str | None = Field(default=None, min_length=1, max_length=4000)
    starts_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    level: ShareLevel | None = None
    max_candidates: int | None = Field(default=None, ge=1, le=1000)
    clear_max_candidates: bool = False
    redacted: bool | None = None


class RevokeIn(Model):
    reason: str = Field(min_length=1, max_length=4000)


class ReleaseIn(Model):
    note: str = Field(min_length=1, max_length=4000)


class AgreementOut(Model):
    agreement_id: str
    owner_org: str
    gallery: str
    grantee_org: str
    level: ShareLevel
    purposes: list[str]
    legal_basis: str
    starts_at: str
    expires_at: str
    max_candidates: int | None
    redacted: bool
    state: AgreementStateName = Field(description="At the service's clock, now.")
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None
