"""Bulk enrolment jobs: a whole folder/CSV on all cores, resumable after a crash
(``faceledger.usecases.enrolment`` authorises them and enrols single images).

The store is written first, in one transaction per batch that also records each input item
of the job and appends the batch's ``enrol_batch`` audit entry; a resumed job skips recorded
items, so a SIGKILL at any moment loses at most the uncommitted batch, never duplicates, and
never leaves a template the audit log does not name. The job's final ``enrol`` entry counts
the whole job from the store's item records (every run's). The gallery's index follows the
store (see indexes).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from faceledger.access import User
from faceledger.audit import AuditOp, AuditRecord
from faceledger.batch import EmbedOutcome, iter_embed_paths
from faceledger.config import Settings
from faceledger.datasets import LabelledImage, read_image_set
from faceledger.gallery.duplicates import NearDuplicate, find_near_duplicates, strongest
from faceledger.gallery.workspace import Workspace
from faceledger.serialize import quality_to_dict
from faceledger.store import (
    Gallery,
    ItemOutcome,
    ItemStatus,
    Job,
    LegalBasis,
    NewTemplate,
    Subject,
    erased_item_key,
)
from faceledger.types import FaceResult, Template

BATCH_ITEMS = 32
BATCH_SECONDS = 2.0

ENROL_REASONS = {
    "no_face": "no face found",
    "ambiguous_face": "several faces",
    "quality_rejected": "below the quality gates",
    "bad_image": "unreadable",
    "too_large": "too large",
}


def enrolment_settings(settings: Settings) -> Settings:
    """Enrolment takes only images with exactly one face (never guess who is meant)."""
    return dataclasses.replace(settings, face_selection="only")


def _template(out: EmbedOutcome) -> Template:
    assert out.result is not None and out.result.template is not None
    return out.result.template


def new_template(subject: Subject, sha: str, face: FaceResult, item_key: str | None) -> NewTemplate:
    assert face.template is not None
    return NewTemplate(
        subject_id=subject.id,
        image_sha256=sha,
        template=face.template,
        quality_score=face.quality.score,
        quality=quality_to_dict(face.quality),
        item_key=item_key,
    )


@dataclass
class BulkReport:
    gallery: str
    source: str
    job_id: int
    resumed: bool
    total_items: int
    already_done: int
    enrolled: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(item, reason) of every rejected item of this run."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of what the source folder holds that is not an image to enrol."""
    subjects_without_template: list[str] = field(default_factory=list)
    near_duplicates: list[tuple[str, NearDuplicate]] = field(default_factory=list)
    """(item, pair) of every new face found to be another subject's (``gallery.duplicates``)."""
    seconds: float = 0.0
    reindexed: dict[str, object] | None = None
    """The gallery's index rebuilt as another kind at the end of this run, if it was."""
    own_fpir_searches: int | None = None
    """Members searched with their own subject left out when the grown gallery's own FPIR was
    counted after the run (None: nothing enrolled, or the gallery is too small to count)."""

    def as_json(self) -> dict[str, object]:
        return {
            "gallery": self.gallery,
            "source": self.source,
            "job_id": self.job_id,
            "resumed": self.resumed,
            "total_items": self.total_items,
            "already_done": self.already_done,
            "enrolled": self.enrolled,
            "duplicates": self.duplicates,
            "rejected": [{"item": k, "reason": r} for k, r in self.rejected],
            "skipped": [{"path": k, "reason": r} for k, r in self.skipped],
            "subjects_without_template": self.subjects_without_template,
            "near_duplicates": [{"item": k, **d.as_json()} for k, d in self.near_duplicates],
            "seconds": round(self.seconds, 2),
            "reindexed": self.reindexed,
            "own_fpir_searches": self.own_fpir_searches,
        }


def _item_key(item: LabelledImage, base: Path) -> str:
    """Stable within a source: the path relative to it (and the CSV line, rows may repeat)."""
    rel = os.path.relpath(item.path, base)
    return f"{item.line}:{rel}" if item.line else rel


@dataclass
class _JobProgress:
    """A job's batches as its audit log tells them: how many were committed, and by how many
    runs (a run killed before its first commit leaves no trace and is not counted)."""

    batches: int = 0
    runs: int = 0


_CLOCK_SLACK = timedelta(hours=1)
"""How far before a job's start its batch entries are looked for (a clock stepped back)."""


def _earlier_progress(ws: Workspace, job: Job) -> _JobProgress:
    """What earlier (killed) runs of ``job`` committed: their ``enrol_batch`` audit entries."""
    batches = 0
    runs: set[int] = set()
    since = job.started_at - _CLOCK_SLACK
    for entry in ws.audit.entries(since, operation=AuditOp.ENROL_BATCH):
        details = entry.record.details
        if details.get("job_id") != job.id:
            continue
        batches += 1
        run = details.get("run")
        if isinstance(run, int):
            runs.add(run)
    return _JobProgress(batches, max(runs, default=0))


class _BatchWriter:
    """Collects outcomes and commits them (templates + job items + an ``enrol_batch`` audit
    entry) in one transaction each."""

    def __init__(
        self,
        ws: Workspace,
        actor: User,
        gallery: Gallery,
        job_id: int,
        report: BulkReport,
        legal_basis: LegalBasis | str | None,
        source: str,
        earlier: _JobProgress,
    ) -> None:
        self.ws, self.actor, self.gallery, self.job_id = ws, actor, gallery, job_id
        self.report, self.legal_basis, self.source = report, legal_basis, source
        self.pending: list[tuple[LabelledImage, str, EmbedOutcome]] = []
        self.last = time.monotonic()
        self.seen_sha: set[str] = set()
        self.run = earlier.runs + 1
        """This run's number within its job."""
        self.batches = earlier.batches
        """Batches the job has committed so far, earlier runs included."""

    def add(self, item: LabelledImage, key: str, out: EmbedOutcome) -> None:
        self.pending.append((item, key, out))
        if len(self.pending) >= BATCH_ITEMS or time.monotonic() - self.last > BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.pending:
            return
        outcomes: list[ItemOutcome] = []
        usable = []
        for item, key, out in self.pending:
            outcome = self._outcome(key, out)
            if outcome is not None:
                outcomes.append(outcome)
            else:
                usable.append((item, key, out))
        chosen, pairs = self._screen(usable, outcomes)
        paths: list[str | Path] = [item.path for item, _, _ in chosen]
        templates = [_template(out) for _, _, out in chosen]
        ids, news = self._commit(chosen, outcomes, pairs)
        self.ws.indexes.add(self.gallery, ids, templates)
        if self.ws.settings.keep_enrolled_images:
            for tid, new, path in zip(ids, news, paths, strict=True):
                self.ws.images.keep(tid, new.image_sha256, Path(path).read_bytes())
        self.report.enrolled += len(ids)
        self.pending.clear()

    def _screen(
        self, usable: list[tuple[LabelledImage, str, EmbedOutcome]], outcomes: list[ItemOutcome]
    ) -> tuple[list[tuple[LabelledImage, str, EmbedOutcome]], list[NearDuplicate]]:
        """The items to enrol, after the near-duplicate check (``gallery.duplicates``), and
        the pairs it found: each is reported; with ``near_duplicates = "refuse"`` its item is
        rejected."""
        faces = [(item.subject, _template(out)) for item, _, out in usable]
        refuse = self.ws.settings.near_duplicates == "refuse"
        kept = []
        pairs: list[NearDuplicate] = []
        for (item, key, out), found in zip(
            usable, find_near_duplicates(self.ws, self.gallery, faces), strict=True
        ):
            self.report.near_duplicates.extend((key, d) for d in found)
            pairs.extend(found)
            if found and refuse:
                detail = strongest(found).describe()
                self.report.rejected.append((key, detail))
                outcomes.append(ItemOutcome(key, ItemStatus.REJECTED, detail))
            else:
                kept.append((item, key, out))
        return kept, pairs

    def _outcome(self, key: str, out: EmbedOutcome) -> ItemOutcome | None:
        """The item's outcome when it gives no template (rejected, duplicate), else None."""
        if out.result is None or out.result.template is None:
            reason = ENROL_REASONS.get(out.error or "", out.error or "failed")
            detail = f"{reason}: {out.message}" if out.message else reason
            self.report.rejected.append((key, detail))
            return ItemOutcome(key, ItemStatus.REJECTED, detail)
        sha = out.sha256 or ""
        if sha in self.seen_sha or self.ws.store.has_image(self.gallery.id, sha):
            self.report.duplicates += 1
            return ItemOutcome(
                key, ItemStatus.SKIPPED_DUPLICATE, "identical image already enrolled"
            )
        self.seen_sha.add(sha)
        return None

    def _commit(
        self,
        chosen: list[tuple[LabelledImage, str, EmbedOutcome]],
        outcomes: list[ItemOutcome],
        pairs: list[NearDuplicate],
    ) -> tuple[list[int], list[NewTemplate]]:
        """The batch's new subjects, templates, item records and audit entry, all in one
        transaction (a kill leaves no subject or template that the audit log does not name)."""
        audit, store = self.ws.audit, self.ws.store
        news: list[NewTemplate] = []
        with audit.writing() as conn:
            for item, key, out in chosen:
                assert out.result is not None
                subject, _ = store.ensure_subject(
                    self.gallery.id,
                    item.subject,
                    enrolled_by=self.actor.id,
                    attributes=dict(item.attributes),
                    legal_basis=self.legal_basis,
                    source=self.source,
                    connection=conn,
                )
                news.append(new_template(subject, out.sha256 or "", out.result, key))
            ids = store.add_templates(news, job_id=self.job_id, outcomes=outcomes, connection=conn)
            audit.append(self._batch_record(ids, outcomes, pairs), connection=conn)
        self.batches += 1
        return ids, news

    def _batch_record(
        self, ids: list[int], outcomes: list[ItemOutcome], pairs: list[NearDuplicate]
    ) -> AuditRecord:
        statuses = [o.status for o in outcomes]
        return AuditRecord(
            operation=AuditOp.ENROL_BATCH,
            actor=self.actor.id,
            galleries=(self.gallery.name,),
            model_id=self.gallery.model_id,
            details={
                "job_id": self.job_id,
                "run": self.run,
                "batch": self.batches + 1,
                "enrolled": len(ids),
                "duplicates": statuses.count(ItemStatus.SKIPPED_DUPLICATE),
                "rejected": statuses.count(ItemStatus.REJECTED),
                "template_ids": list(ids),
                "near_duplicates": [d.as_json() for d in pairs],
            },
        )


def _job_record(
    ws: Workspace, actor: User, gallery: Gallery, report: BulkReport, writer: _BatchWriter
) -> AuditRecord:
    """The job's final ``enrol`` entry: the whole job's outcome, counted from the items the
    store records for it (every run's), and the batches and runs it took."""
    done = Counter(item.status for item in ws.store.list_job_items(report.job_id))
    return AuditRecord(
        operation=AuditOp.ENROL,
        actor=actor.id,
        galleries=(gallery.name,),
        model_id=gallery.model_id,
        details={
            "job_id": report.job_id,
            "source": report.source,
            "resumed": report.resumed,
            "items": report.total_items,
            "enrolled": done[ItemStatus.ENROLLED],
            "duplicates": done[ItemStatus.SKIPPED_DUPLICATE],
            "rejected": done[ItemStatus.REJECTED],
            "batches": writer.batches,
            "runs": writer.run,
            "this_run": {
                "enrolled": report.enrolled,
                "duplicates": report.duplicates,
                "rejected": len(report.rejected),
            },
        },
    )


def run_job(
    ws: Workspace,
    actor: User,
    gallery: Gallery,
    source: Path,
    *,
    legal_basis: LegalBasis | str | None = None,
    on_item: Callable[[], None] | None = None,
    on_total: Callable[[int, int], None] | None = None,
) -> BulkReport:
    """Enrol every image of a folder (one sub-folder per subject) or CSV into ``gallery``,
    resuming a job interrupted earlier on the same source (the caller has authorised it).
    ``on_total(total, already_done)`` is called once before work starts; ``on_item`` after
    each image."""
    skipped: list[tuple[str, str]] = []
    items = read_image_set(source, skipped)
    base = source if source.is_dir() else source.parent
    source_key = str(source.resolve())
    job = ws.store.find_open_job(gallery.id, source_key)
    resumed = job is not None
    if job is None:
        job = ws.store.start_job(gallery.id, source_key, started_by=actor.id)
    done = ws.store.job_item_keys(job.id)
    keyed = [(item, _item_key(item, base)) for item in items]
    todo = [
        (item, key) for item, key in keyed if key not in done and erased_item_key(key) not in done
    ]
    report = BulkReport(
        gallery.name, str(source), job.id, resumed, len(items), len(items) - len(todo)
    )
    report.skipped = [(os.path.relpath(p, base), why) for p, why in skipped]
    if on_total:
        on_total(len(items), report.already_done)
    dimension = ws.engine_for(gallery).card.dimension
    ws.indexes.get(gallery, dimension)  # open + reconcile before writing
    earlier = _earlier_progress(ws, job) if resumed else _JobProgress()
    writer = _BatchWriter(ws, actor, gallery, job.id, report, legal_basis, str(source), earlier)
    started = time.monotonic()
    settings = enrolment_settings(ws.engine_for(gallery).settings)
    for i, out in iter_embed_paths([it.path for it, _ in todo], settings, enrolment=True):
        item, key = todo[i]
        writer.add(item, key, out)
        if on_item:
            on_item()
    writer.flush()
    ws.indexes.save(gallery)
    ws.store.finish_job(job.id)
    ws.audit.append(_job_record(ws, actor, gallery, report, writer))
    # a gallery that outgrew its index kind is rebuilt as the kind its size calls for
    reindexed = ws.indexes.maybe_reindex(gallery, dimension)
    if reindexed is not None:
        report.reindexed = reindexed.as_json()
    report.seconds = time.monotonic() - started
    enrolled_subjects = {
        s for s in {it.subject for it in items} if ws.store.find_subject(gallery.id, s) is not None
    }
    report.subjects_without_template = sorted({it.subject for it in items} - enrolled_subjects)
    return report
