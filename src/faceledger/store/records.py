"""Typed records the metadata store reads and writes: galleries, subjects, templates, jobs.

Frozen dataclasses with plain values (JSON fields are dicts, times are aware UTC datetimes,
vectors are float32 numpy arrays) so callers never see SQL rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from faceledger.types import Template, Vector

T = TypeVar("T")

JsonObject = dict[str, Any]
"""A JSON object (keys are strings, values JSON-serialisable)."""


class LegalBasis(StrEnum):
    """Why the data of a subject may be held."""

    CONSENT = "consent"
    STATUTE = "statute"
    WARRANT = "warrant"
    OTHER = "other"


class ItemStatus(StrEnum):
    """What a bulk enrolment job did with one input item."""

    ENROLLED = "enrolled"
    REJECTED = "rejected"
    SKIPPED_DUPLICATE = "skipped_duplicate"


@dataclass(frozen=True)
class Gallery:
    id: int
    name: str
    description: str
    model_id: str
    created_at: datetime
    created_by: str
    retention_days: int | None
    """Subjects enrolled longer ago than this many days may be purged (see :attr:`retention`)."""
    legal_basis: LegalBasis
    """Default legal basis of subjects enrolled without one."""
    index_description: JsonObject
    """How the gallery's vector index is built (backend, parameters), owned by the index layer."""
    retention_hours: int | None = None
    """The period in hours, for galleries that must be gone within a day or so; at most one of
    ``retention_days`` and ``retention_hours`` is set."""

    @property
    def retention(self) -> timedelta | None:
        """The retention period whichever unit it was given in; None keeps subjects
        indefinitely. The store never holds both units; were both there (a database edited
        by hand), the shorter one applies. A period beyond what dates can express (only
        writable by hand) is none: nothing can be older than it."""
        periods = []
        try:
            if self.retention_days is not None:
                periods.append(timedelta(days=self.retention_days))
            if self.retention_hours is not None:
                periods.append(timedelta(hours=self.retention_hours))
        except OverflowError:
            return None
        return min(periods, default=None)

    @property
    def retention_text(self) -> str | None:
        """The period as people read it (``"12 hours"``, ``"30 days"``), None when there is
        none; audit entries give retention's reasons in these words."""
        if self.retention_hours is not None and (
            self.retention_days is None or self.retention_hours < 24 * self.retention_days
        ):
            return _count(self.retention_hours, "hour")
        if self.retention_days is not None:
            return _count(self.retention_days, "day")
        return None


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


@dataclass(frozen=True)
class Subject:
    id: int
    gallery_id: int
    external_id: str
    display_name: str | None
    attributes: JsonObject
    legal_basis: LegalBasis
    source: str | None
    enrolled_at: datetime
    enrolled_by: str


@dataclass(frozen=True)
class TemplateInfo:
    """A stored template without its vector."""

    id: int
    """Unique, never reused (also after deletion); the vector id in the index."""
    subject_id: int
    gallery_id: int
    image_sha256: str
    quality_score: float | None
    quality: JsonObject | None
    model_id: str
    dimension: int
    created_at: datetime
    encrypted: bool


@dataclass(frozen=True, eq=False)
class StoredTemplate:
    """A stored template with its (decrypted) vector."""

    info: TemplateInfo
    vector: Vector = field(repr=False)

    @property
    def id(self) -> int:
        return self.info.id

    @property
    def template(self) -> Template:
        return Template(self.info.model_id, self.vector)


@dataclass(frozen=True, eq=False)
class TemplateBatch:
    """A slice of a gallery's templates, for building a vector index."""

    ids: npt.NDArray[np.int64]
    subject_ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32] = field(repr=False)
    """Shape (len(ids), dimension)."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class NewTemplate:
    """A template to store. ``item_key`` records it as an enrolled item of the batch's job."""

    subject_id: int
    image_sha256: str
    template: Template
    _: KW_ONLY
    quality_score: float | None = None
    quality: Mapping[str, Any] | None = None
    item_key: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """A job item that produced no template (rejected, or a duplicate image skipped)."""

    item_key: str
    status: ItemStatus
    reason: str | None = None


@dataclass(frozen=True)
class Job:
    id: int
    gallery_id: int
    source: str
    """What is being enrolled, e.g. the folder or CSV path; used to find a job to resume."""
    started_at: datetime
    started_by: str
    finished_at: datetime | None


@dataclass(frozen=True)
class JobItem:
    job_id: int
    item_key: str
    status: ItemStatus
    reason: str | None
    template_id: int | None
    """None for items without a template, and once the template has been deleted."""
    recorded_at: datetime


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: str | None
    """Pass back to get the following page; None on the last page."""


@dataclass(frozen=True)
class Counts:
    galleries: int
    subjects: int
    templates: int


@dataclass(frozen=True)
class Removed:
    """What a deletion removed: the index layer drops ``template_ids``; audit records hashes."""

    subjects: tuple[Subject, ...]
    """The subjects deleted (empty when a single template was deleted)."""
    template_ids: tuple[int, ...]
    image_sha256s: tuple[str, ...]
    """The image hashes of the deleted templates, in the order of ``template_ids``."""

    @property
    def subject_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.subjects)


class Unset(Enum):
    """Marks an argument of an update that is left unchanged."""

    UNSET = "unset"


UNSET = Unset.UNSET
