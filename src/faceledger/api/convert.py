"""Domain values → API bodies (one place, so the CLI's JSON and the API's stay alike)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from faceledger.access import Agreement, Organisation, PurposeCategory, User
from faceledger.api import schemas as s
from faceledger.api.jobs import VideoJob
from faceledger.audit import AuditEntry, VerifyReport
from faceledger.errors import IntegrityError
from faceledger.match.identify import Candidate, FaceCandidates
from faceledger.review import REDACTED_SUBJECT, LeadState, SearchRecord
from faceledger.store import Counts, Gallery, StoredTemplate, Subject, TemplateInfo
from faceledger.types import Decision, FaceResult, FMREstimate, QualityReport
from faceledger.usecases import SearchResult
from faceledger.video import VideoInfo


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def user(u: User) -> s.UserOut:
    return s.UserOut(
        id=u.id,
        display_name=u.display_name,
        roles=sorted(u.roles),
        grants=dict(sorted(u.grants.items())),
        active=u.active,
        org=u.org,
    )


def gallery(g: Gallery, counts: Counts | None = None, owner_org: str | None = None) -> s.GalleryOut:
    return s.GalleryOut(
        owner_org=owner_org,
        name=g.name,
        description=g.description,
        model_id=g.model_id,
        legal_basis=g.legal_basis,
        retention_days=g.retention_days,
        retention_hours=g.retention_hours,
        created_at=iso(g.created_at),
        created_by=g.created_by,
        subjects=None if counts is None else counts.subjects,
        templates=None if counts is None else counts.templates,
    )


def subject(x: Subject) -> s.SubjectOut:
    return s.SubjectOut(
        external_id=x.external_id,
        display_name=x.display_name,
        attributes=dict(x.attributes),
        legal_basis=x.legal_basis,
        source=x.source,
        enrolled_at=iso(x.enrolled_at),
        enrolled_by=x.enrolled_by,
    )


def template(t: TemplateInfo | StoredTemplate, image_kept: bool) -> s.TemplateOut:
    info = t.info if isinstance(t, StoredTemplate) else t
    flags = (info.quality or {}).get("flags") or []
    return s.TemplateOut(
        id=info.id,
        image_sha256=info.image_sha256,
        model_id=info.model_id,
        quality_score=info.quality_score,
        quality_flags=[str(f) for f in flags],
        created_at=iso(info.created_at),
        image_kept=image_kept,
    )


def quality(q: QualityReport) -> s.QualityOut:
    return s.QualityOut(
        score=round(q.score, 2),
        flags=list(q.flags),
        face_width_px=round(q.face_width_px, 2),
        inter_eye_px=round(q.inter_eye_px, 2),
        sharpness=round(q.sharpness, 2),
        brightness=round(q.brightness, 2),
        contrast=round(q.contrast, 2),
        clipped_fraction=round(q.clipped_fraction, 4),
        yaw_deg=round(q.yaw_deg, 2),
        roll_deg=round(q.roll_deg, 2),
    )


def face(f: FaceResult) -> s.FaceOut:
    b = f.detection.box
    return s.FaceOut(
        box=s.BoxOut(
            left=round(b.left, 1),
            top=round(b.top, 1),
            right=round(b.right, 1),
            bottom=round(b.bottom, 1),
        ),
        confidence=round(f.detection.confidence, 4),
        detector=f.detection.detector,
        quality=quality(f.quality),
        face_index=f.face_index,
        faces_in_image=f.faces_in_image,
        selection=f.selection,
    )


def fmr(est: FMREstimate) -> s.FmrOut:
    return s.FmrOut(value=est.value, upper_bound=est.upper_bound, impostor_pairs=est.impostor_pairs)


def decision(d: Decision) -> s.DecisionOut:
    return s.DecisionOut(
        outcome="match" if d.outcome.value == "match" else "no_match",
        score=round(d.score, 6),
        fmr=fmr(d.fmr),
        target_fmr=d.target_fmr,
        threshold=round(d.threshold, 6),
        model_id=d.model_id,
    )


def _finite(x: float | None, digits: int | None = None) -> float | None:
    """``x`` rounded, or None when it is missing or not a number (JSON has no NaN)."""
    if x is None or not math.isfinite(x):
        return None
    return x if digits is None else round(x, digits)


_NORMALISATIONS: dict[str, s.Normalisation] = {"asnorm": "asnorm", "none": "none"}


def normalisation(value: str) -> s.Normalisation:
    """The API's name for a search's score normalisation; an unknown one is refused rather
    than passed off as a known scale."""
    found = _NORMALISATIONS.get(value)
    if found is None:
        raise IntegrityError(f"unknown score normalisation {value!r}")
    return found


def candidate(c: Candidate) -> s.CandidateOut:
    return s.CandidateOut(
        rank=c.rank,
        gallery=c.gallery,
        subject=c.external_id,
        display_name=c.display_name,
        score=round(c.score, 6),
        similarity=_finite(c.similarity, 6),
        fmr=fmr(c.fmr),
        fpir=_finite(c.fpir),
        template_id=c.template_id,
    )


def face_candidates(fc: FaceCandidates) -> s.FaceCandidatesOut:
    return s.FaceCandidatesOut(
        face=face(fc.face),
        outcome="candidates" if fc.candidates else "no_candidate",
        normalisation=normalisation(fc.normalisation),
        threshold=round(fc.threshold, 6),
        threshold_extrapolated=fc.extrapolated,
        comparison_fmr=fc.comparison_fmr,
        threshold_source=fc.threshold_source,
        candidates=[candidate(c) for c in fc.candidates],
    )


def search_result(r: SearchResult) -> s.SearchOut:
    return s.SearchOut(
        search_id=r.search_id,
        audit_seq=r.audit_seq,
        probe_sha256=r.probe_sha256,
        galleries=list(r.galleries),
        model_id=r.model_id,
        target_fpir=r.target_fpir,
        templates_searched=r.templates_searched,
        probe_kept=r.probe_kept,
        faces=[face_candidates(f) for f in r.faces],
        gallery_owners=dict(sorted(r.owners.items())),
        redacted_galleries=sorted(r.redacted),
    )


def lead(
    state: LeadState, two_person_rule: bool, record: SearchRecord, *, blind: bool = False
) -> s.LeadOut:
    """``state`` as its reader may see it (the use cases mask a withheld subject), with
    whose gallery it came from (``record``: the lead's search). ``blind``: the reader has yet
    to look at the faces, so nothing that could sway them is given."""
    needed = 2 if two_person_rule else 1
    release = state.release
    if blind:
        state = dataclasses.replace(state, decisions=(), first_looks=())
    return s.LeadOut(
        rank=state.rank,
        gallery=state.lead.gallery,
        subject=state.lead.subject_id,
        template_id=state.lead.template_id,
        blind=blind,
        face_index=state.face_index,
        score=None if blind else state.lead.score,
        fmr=None if blind else state.lead.fmr,
        fmr_upper_bound=False if blind else state.lead.fmr_upper_bound,
        status=None if blind else state.status,
        open=state.status.open,
        confirmed_by=list(state.confirmed_by),
        confirmations_needed=None if blind else max(0, needed - len(state.confirmed_by)),
        first_looks=[
            s.FirstLookOut(
                reviewer=f.reviewer,
                judgement=f.judgement.value,
                looked_at=iso(f.looked_at),
                audit_seq=f.audit_seq,
            )
            for f in state.first_looks
        ],
        decisions=[
            s.ReviewDecisionOut(
                reviewer=d.reviewer,
                verdict=d.verdict,
                note=d.note,
                decided_at=iso(d.decided_at),
                audit_seq=d.audit_seq,
            )
            for d in state.decisions
        ],
        owner_org=record.owner_of(state.lead.gallery),
        redacted=state.lead.subject_id == REDACTED_SUBJECT,
        withheld=record.withheld(state),
        released_by=None if release is None else release.released_by,
        released_at=None if release is None else iso(release.released_at),
    )


def recorded_normalisation(entry: AuditEntry) -> s.Normalisation | None:
    """The score normalisation a search's audit entry records, or None if it records none
    (or one this service does not know: better unsaid than mislabelled)."""
    value = entry.record.details.get("normalisation")
    return _NORMALISATIONS.get(value) if isinstance(value, str) else None


_FACE_FIELDS = frozenset(s.FaceOut.model_fields)
_SPAN_FIELDS = frozenset(s.TrackSpanOut.model_fields)
_VIDEO_OPS = {"video_search": "video_search", "video_alert": "video_alert"}


def probe_face(record: dict[str, Any]) -> s.FaceOut:
    """A face kept with a probe. A video track's faces also carry when they were seen
    (``time_s``, ``frame``), which the record's ``video`` context gives instead."""
    return s.FaceOut.model_validate({k: v for k, v in record.items() if k in _FACE_FIELDS})


def _list(raw: Any) -> list[Any]:
    """A JSON array of audit details as a list; [] for anything else."""
    return list(raw) if isinstance(raw, Sequence) and not isinstance(raw, str) else []


def _span(raw: Any) -> s.TrackSpanOut:
    if not isinstance(raw, Mapping):
        raise ValueError("a track is an object")
    return s.TrackSpanOut.model_validate({k: v for k, v in raw.items() if k in _SPAN_FIELDS})


def _face_time(record: dict[str, Any]) -> s.TrackFaceTimeOut:
    when, frame = record.get("time_s"), record.get("frame")
    return s.TrackFaceTimeOut(
        time_s=float(when) if isinstance(when, int | float) else None,
        frame=frame if isinstance(frame, int) else None,
    )


def video_context(
    entry: AuditEntry, search_id: str, probe_faces: tuple[dict[str, Any], ...] | None
) -> s.VideoContextOut | None:
    """Where the lead track ``search_id`` lies in its video, from the audit entry of its
    video search (``lead_tracks`` in the order of ``track_search_ids``) or live alert
    (``track``); None for an image search, or an entry that does not say (better unsaid than
    wrong)."""
    d = entry.record.details
    kind = _VIDEO_OPS.get(str(entry.record.operation))
    ids = _list(d.get("track_search_ids"))
    if kind is None or search_id not in ids:
        return None
    raw_video = d.get("video")
    video: Mapping[str, Any] = raw_video if isinstance(raw_video, Mapping) else {}
    try:
        if kind == "video_search":
            tracks = _list(d.get("lead_tracks"))
            if len(tracks) != len(ids):
                return None
            mine = ids.index(search_id)
            track = _span(tracks[mine])
            others = [_span(t) for i, t in enumerate(tracks) if i != mine]
        else:
            track, others = _span(d.get("track")), []
    except ValueError:  # pydantic's ValidationError included
        return None
    searched, expected = d.get("tracks_searched"), d.get("expected_false_alerts")
    duration, sha = video.get("duration_s"), video.get("sha256")
    return s.VideoContextOut.model_validate(
        {
            "kind": kind,
            "video_sha256": sha if isinstance(sha, str) else entry.record.probe_sha256,
            "duration_s": duration if isinstance(duration, int | float) else None,
            "track": track,
            "other_tracks": others,
            "tracks_searched": searched if isinstance(searched, int) else None,
            "expected_false_alerts": expected if isinstance(expected, int | float) else None,
            "faces": [_face_time(f) for f in probe_faces or ()],
        }
    )


def search_record(
    rec: SearchRecord,
    *,
    entry: AuditEntry | None,
    visible_galleries: frozenset[str] | None,
    two_person_rule: bool,
    probe_faces: tuple[dict[str, Any], ...] | None,
    blind: frozenset[int] = frozenset(),
) -> s.SearchRecordOut:
    """``visible_galleries`` None shows every lead; otherwise only leads from those.
    ``entry`` is the search's audit entry, which says what its scores are and, for a lead
    track of a video, where the track lies in the video."""
    shown = [
        st for st in rec.leads if visible_galleries is None or st.lead.gallery in visible_galleries
    ]
    return s.SearchRecordOut(
        search_id=rec.search_id,
        actor=rec.actor,
        created_at=iso(rec.created_at),
        purpose=rec.purpose,
        case_ref=rec.case_ref,
        galleries=list(rec.galleries),
        model_id=rec.model_id,
        audit_seq=rec.audit_seq,
        normalisation=None if entry is None else recorded_normalisation(entry),
        threshold=None if entry is None else entry.record.threshold,
        two_person_rule=two_person_rule,
        probe_faces=None if probe_faces is None else [probe_face(f) for f in probe_faces],
        leads=[lead(st, two_person_rule, rec, blind=st.rank in blind) for st in shown],
        leads_hidden=len(rec.leads) - len(shown),
        requester_org=rec.requester_org,
        gallery_owners={g: rec.owner_of(g) for g in rec.galleries},
        redacted_galleries=sorted(g for g in rec.galleries if rec.terms(g).redacted),
        video=None if entry is None else video_context(entry, rec.search_id, probe_faces),
    )


def org(o: Organisation) -> s.OrgOut:
    return s.OrgOut(
        org_id=o.id,
        display_name=o.display_name,
        created_at=None if o.created_at is None else iso(o.created_at),
    )


def purpose(p: PurposeCategory) -> s.PurposeOut:
    return s.PurposeOut(org=p.org, name=p.name, description=p.description)


def agreement(a: Agreement, now: datetime) -> s.AgreementOut:
    """``a`` with its state at ``now`` (the service's clock)."""
    return s.AgreementOut.model_validate(
        {
            **a.to_json(),
            "starts_at": iso(a.terms.starts_at),
            "expires_at": iso(a.terms.expires_at),
            "state": str(a.state(now)),
            "created_at": iso(a.created_at),
            "created_by": a.created_by,
            "revoked_at": None if a.revoked_at is None else iso(a.revoked_at),
            "revoked_by": a.revoked_by,
        }
    )


def audit_entry(entry: AuditEntry) -> s.AuditEntryOut:
    r = entry.record
    return s.AuditEntryOut(
        seq=entry.seq,
        timestamp=iso(entry.timestamp),
        actor=r.actor,
        operation=str(r.operation),
        purpose=r.purpose,
        case_ref=r.case_ref,
        galleries=list(r.galleries),
        model_id=r.model_id,
        threshold=r.threshold,
        target_fmr=r.target_fmr,
        target_fpir=r.target_fpir,
        probe_sha256=r.probe_sha256,
        candidates=[c.to_json(i + 1) for i, c in enumerate(r.candidates)],
        details=dict(r.details),
        hash=entry.hash,
        prev_hash=entry.prev_hash,
        signed=entry.signature is not None,
    )


def verify_report(rep: VerifyReport) -> s.AuditVerifyOut:
    head = None
    if rep.head is not None:
        head = s.ChainHeadOut(
            seq=rep.head.seq,
            hash=rep.head.hash,
            signature=rep.head.signature,
            signer=rep.head.signer,
        )
    return s.AuditVerifyOut(
        ok=rep.ok,
        entries=rep.entries,
        first_bad_position=rep.first_bad_position,
        reason=rep.reason,
        head=head,
        signed_entries=rep.signed_entries,
    )


def _epoch_iso(seconds: float | None) -> str | None:
    return None if seconds is None else iso(datetime.fromtimestamp(seconds, UTC))


def video_info(info: VideoInfo) -> s.VideoInfoOut:
    return s.VideoInfoOut(
        sha256=info.sha256,
        container=info.container,
        codec=info.codec,
        width=info.width,
        height=info.height,
        fps=round(info.fps, 4),
        duration_s=_finite(info.duration_s, 3),
        frames=info.frames,
    )


def video_job(job: VideoJob) -> s.VideoJobOut:
    p = job.progress
    fraction = 1.0 if job.state == "done" else p.fraction
    return s.VideoJobOut(
        job_id=job.id,
        status=job.state,
        actor=job.actor,
        galleries=list(job.galleries),
        created_at=iso(datetime.fromtimestamp(job.created_at, UTC)),
        started_at=_epoch_iso(job.started_at),
        finished_at=_epoch_iso(job.finished_at),
        cancel_requested=job.cancel_requested,
        video=video_info(job.video),
        progress=s.VideoJobProgressOut(
            fraction=None if fraction is None else round(fraction, 4),
            seconds_read=p.seconds_read,
            duration_s=_finite(p.duration_s, 3),
            frames_sampled=p.frames_sampled,
            tracks_searched=p.tracks_searched,
            tracks_with_leads=p.tracks_with_leads,
        ),
        result=job.result,
        error=None
        if job.error is None
        else s.JobErrorOut(code=job.error.code, message=job.error.message),
    )
