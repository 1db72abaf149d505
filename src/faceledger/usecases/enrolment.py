"""Enrolment: one image, a batch of uploaded images, or a folder/CSV job on all cores.

Whatever the entry point, an enrolment image must hold exactly one face passing the quality
gates; an image already enrolled in the gallery is a conflict; the enrolled image is kept for
reviewers when ``Settings.keep_enrolled_images`` says so; and after a bulk enrolment the
grown gallery's own FPIR is counted at once, so its next search does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from faceledger.access import Operation, User, authorize
from faceledger.audit import AuditOp, AuditRecord
from faceledger.errors import Conflict, InputError, NearDuplicateFace
from faceledger.gallery.duplicates import NearDuplicate, find_near_duplicates, strongest
from faceledger.gallery.enrol import BulkReport, new_template, run_job
from faceledger.gallery.selfcal import precount
from faceledger.gallery.workspace import Workspace
from faceledger.pipeline import ImageInput
from faceledger.store import Gallery, LegalBasis, Subject
from faceledger.types import FaceResult


@dataclass(frozen=True)
class EnrolImage:
    gallery: str
    subject: str
    image: ImageInput
    display_name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    legal_basis: LegalBasis | str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Enrolled:
    subject: Subject
    template_id: int
    face: FaceResult
    image_sha256: str
    image_kept: bool
    near_duplicates: tuple[NearDuplicate, ...] = ()
    """Other subjects of the gallery whose face this one is, by a calibrated score (enrolled
    anyway: ``near_duplicates = "warn"``)."""


def enrol_image(ws: Workspace, actor: User, req: EnrolImage) -> Enrolled:
    """Enrol one image of a subject (created on its first image), audited."""
    authorize(actor, Operation.ENROL, req.gallery)
    gallery = ws.store.get_gallery_by_name(req.gallery)
    engine = ws.engine_for(gallery)
    img = engine.load(req.image)
    if ws.store.has_image(gallery.id, img.sha256):
        raise Conflict(f"this image is already enrolled in gallery {gallery.name!r}")
    face = engine.embed(img, selection="only", enrolment=True)
    assert face.template is not None
    dups = _near_duplicates(ws, gallery, req.subject, face)
    with ws.audit.writing() as conn:  # subject, template and audit entry commit together
        subject, _ = ws.store.ensure_subject(
            gallery.id,
            req.subject,
            enrolled_by=actor.id,
            display_name=req.display_name,
            attributes=dict(req.attributes),
            legal_basis=req.legal_basis,
            source=req.source,
            connection=conn,
        )
        (tid,) = ws.store.add_templates(
            [new_template(subject, img.sha256, face, None)], connection=conn
        )
        ws.audit.append(
            AuditRecord(
                operation=AuditOp.ENROL,
                actor=actor.id,
                galleries=(gallery.name,),
                model_id=face.template.model_id,
                details={
                    "subject": subject.external_id,
                    "template_id": tid,
                    "image_sha256": img.sha256,
                    "quality": face.quality.score,
                    "near_duplicates": [d.as_json() for d in dups],
                },
            ),
            connection=conn,
        )
    ws.indexes.add(gallery, [tid], [face.template])
    ws.indexes.save(gallery)
    ws.indexes.maybe_reindex(gallery, face.template.dimension)
    kept = ws.settings.keep_enrolled_images and _keep_image(ws, tid, img.sha256, req.image)
    return Enrolled(subject, tid, face, img.sha256, kept, tuple(dups))


def _near_duplicates(
    ws: Workspace, gallery: Gallery, subject: str, face: FaceResult
) -> list[NearDuplicate]:
    """The other subjects this face already belongs to; refused when the settings say so."""
    assert face.template is not None
    (dups,) = find_near_duplicates(ws, gallery, [(subject, face.template)])
    if dups and ws.settings.near_duplicates == "refuse":
        worst = strongest(dups)
        raise NearDuplicateFace(
            f"this face is subject {worst.other_subject!r}'s in gallery {gallery.name!r} "
            f"(score {worst.score:.4f}, estimated false-match rate {worst.fmr:.1e}); the "
            "gallery refuses near-duplicates across subjects"
        )
    return dups


def _keep_image(ws: Workspace, template_id: int, sha256: str, image: ImageInput) -> bool:
    """Keep the enrolled image for reviewers (never undoing the enrolment)."""
    data = image_bytes(image)
    return data is not None and ws.images.keep(template_id, sha256, data)


def image_bytes(image: ImageInput) -> bytes | None:
    """The encoded bytes of an image input (None for already decoded pixels)."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    return None


# -- several uploaded images --------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One uploaded image and the subject it shows."""

    name: str
    subject: str
    data: bytes


@dataclass(frozen=True)
class EnrolUploads:
    gallery: str
    items: tuple[Upload, ...]
    legal_basis: LegalBasis | str | None = None
    source: str | None = None


UploadStatus = Literal["enrolled", "duplicate", "rejected"]


@dataclass(frozen=True)
class UploadOutcome:
    name: str
    subject: str
    status: UploadStatus
    template_id: int | None = None
    code: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class UploadsEnrolled:
    gallery: str
    items: tuple[UploadOutcome, ...]
    own_fpir_searches: int | None
    """See :attr:`BulkReport.own_fpir_searches`."""

    def count(self, status: UploadStatus) -> int:
        return sum(i.status == status for i in self.items)


def enrol_uploads(ws: Workspace, actor: User, req: EnrolUploads) -> UploadsEnrolled:
    """Enrol each image, or skip it as a duplicate, or reject it with its reason: one bad
    image never stops the others, and nothing already stored is touched."""
    authorize(actor, Operation.ENROL, req.gallery)
    gallery = ws.store.get_gallery_by_name(req.gallery)
    out: list[UploadOutcome] = []
    for item in req.items:
        one = EnrolImage(
            gallery.name, item.subject, item.data, legal_basis=req.legal_basis, source=req.source
        )
        try:
            done = enrol_image(ws, actor, one)
        except Conflict as exc:
            out.append(
                UploadOutcome(item.name, item.subject, "duplicate", None, exc.code, exc.message)
            )
        except InputError as exc:
            out.append(
                UploadOutcome(item.name, item.subject, "rejected", None, exc.code, exc.message)
            )
        else:
            warn = "; ".join(d.describe() for d in done.near_duplicates)
            out.append(
                UploadOutcome(
                    item.name, item.subject, "enrolled", done.template_id, None, warn or None
                )
            )
    enrolled = any(o.status == "enrolled" for o in out)
    return UploadsEnrolled(gallery.name, tuple(out), _recount(ws, gallery) if enrolled else None)


# -- a folder or CSV, in bulk ------------------------------------------------------------


@dataclass(frozen=True)
class EnrolFolder:
    """A folder with one sub-folder per subject, or a CSV ``image,subject[,attributes...]``."""

    gallery: str
    source: Path
    legal_basis: LegalBasis | str | None = None


def enrol_folder(
    ws: Workspace,
    actor: User,
    req: EnrolFolder,
    *,
    on_total: Callable[[int, int], None] | None = None,
    on_item: Callable[[], None] | None = None,
    on_counting: Callable[[], None] | None = None,
) -> BulkReport:
    """Enrol every image of ``req.source`` on all cores, resuming a job interrupted earlier
    on the same source, then count the grown gallery's own FPIR. ``on_total(total, done)``
    is called once before work starts, ``on_item`` after each image, ``on_counting`` before
    the count."""
    authorize(actor, Operation.ENROL, req.gallery)
    gallery = ws.store.get_gallery_by_name(req.gallery)
    report = run_job(
        ws,
        actor,
        gallery,
        req.source,
        legal_basis=req.legal_basis,
        on_item=on_item,
        on_total=on_total,
    )
    if report.enrolled:
        if on_counting:
            on_counting()
        report.own_fpir_searches = _recount(ws, gallery)
    return report


def _recount(ws: Workspace, gallery: Gallery) -> int | None:
    """Count the gallery's own FPIR now, so its next search finds the count ready."""
    own = precount(ws, gallery)
    return None if own is None else own.searches
