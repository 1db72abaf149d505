"""The metadata store protocol: what the gallery, enrolment, search and API layers may rely on.

:class:`faceledger.store.sql.SqlStore` implements it for SQLite and PostgreSQL; the contract
suite (``tests/contract/test_store_contract.py``) is what any other implementation must pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from faceledger.store.records import (
    Counts,
    Gallery,
    ItemOutcome,
    ItemStatus,
    Job,
    JobItem,
    JsonObject,
    LegalBasis,
    NewTemplate,
    Page,
    Removed,
    StoredTemplate,
    Subject,
    TemplateBatch,
    TemplateInfo,
    Unset,
)


class MetadataStore(Protocol):
    # galleries
    def create_gallery(
        self,
        name: str,
        *,
        model_id: str,
        created_by: str,
        legal_basis: LegalBasis | str,
        description: str = ...,
        retention_days: int | None = ...,
        index_description: JsonObject | None = ...,
        retention_hours: int | None = ...,
    ) -> Gallery: ...
    def get_gallery(self, gallery_id: int) -> Gallery: ...
    def get_gallery_by_name(self, name: str) -> Gallery: ...
    def list_galleries(self) -> list[Gallery]: ...
    def update_gallery(
        self,
        gallery_id: int,
        *,
        description: str | Unset = ...,
        retention_days: int | Unset | None = ...,
        legal_basis: LegalBasis | str | Unset = ...,
        index_description: JsonObject | Unset = ...,
        retention_hours: int | Unset | None = ...,
    ) -> Gallery: ...
    def delete_gallery(self, gallery_id: int) -> Removed: ...

    # subjects
    def add_subject(
        self,
        gallery_id: int,
        external_id: str,
        *,
        enrolled_by: str,
        display_name: str | None = ...,
        attributes: JsonObject | None = ...,
        legal_basis: LegalBasis | str | None = ...,
        source: str | None = ...,
    ) -> Subject: ...
    def ensure_subject(
        self,
        gallery_id: int,
        external_id: str,
        *,
        enrolled_by: str,
        display_name: str | None = ...,
        attributes: JsonObject | None = ...,
        legal_basis: LegalBasis | str | None = ...,
        source: str | None = ...,
        connection: sa.Connection | None = ...,
    ) -> tuple[Subject, bool]: ...
    def get_subject(self, subject_id: int) -> Subject: ...
    def get_subjects(self, subject_ids: Iterable[int]) -> dict[int, Subject]: ...
    def find_subject(self, gallery_id: int, external_id: str) -> Subject | None: ...
    def list_subjects(
        self, gallery_id: int, *, limit: int = ..., cursor: str | None = ...
    ) -> Page[Subject]: ...
    def update_subject(
        self,
        subject_id: int,
        *,
        display_name: str | Unset | None = ...,
        attributes: JsonObject | Unset = ...,
        legal_basis: LegalBasis | str | Unset = ...,
        source: str | Unset | None = ...,
    ) -> Subject: ...
    def delete_subject(self, subject_id: int) -> Removed: ...
    def list_expired_subjects(
        self, *, now: datetime | None = ..., gallery_id: int | None = ...
    ) -> list[Subject]: ...

    # templates
    def add_template(self, new: NewTemplate, *, job_id: int | None = ...) -> int: ...
    def add_templates(
        self,
        new: Sequence[NewTemplate],
        *,
        job_id: int | None = ...,
        outcomes: Sequence[ItemOutcome] = ...,
        connection: sa.Connection | None = ...,
    ) -> list[int]: ...
    def has_image(self, gallery_id: int, image_sha256: str) -> bool: ...
    def get_templates(self, template_ids: Iterable[int]) -> dict[int, StoredTemplate]: ...
    def list_templates(self, subject_id: int) -> list[TemplateInfo]: ...
    def template_counts(self, subject_ids: Iterable[int]) -> dict[int, int]: ...
    def template_ids(self, gallery_id: int) -> np.ndarray[Any, np.dtype[np.int64]]: ...
    def iter_templates(
        self, gallery_id: int, *, batch_size: int = ...
    ) -> Iterator[TemplateBatch]: ...
    def delete_template(self, template_id: int) -> Removed: ...
    def encrypt_stored_templates(self) -> int: ...
    def check_encryption(self) -> None: ...

    # enrolment jobs
    def start_job(self, gallery_id: int, source: str, *, started_by: str) -> Job: ...
    def get_job(self, job_id: int) -> Job: ...
    def list_jobs(self, gallery_id: int) -> list[Job]: ...
    def find_open_job(self, gallery_id: int, source: str) -> Job | None: ...
    def finish_job(self, job_id: int) -> Job: ...
    def record_outcomes(self, job_id: int, outcomes: Sequence[ItemOutcome]) -> None: ...
    def job_item_keys(self, job_id: int) -> set[str]: ...
    def list_job_items(self, job_id: int, *, status: ItemStatus | None = ...) -> list[JobItem]: ...

    # whole store
    def counts(self, gallery_id: int | None = ...) -> Counts: ...
    def compact(self) -> None: ...
    def export_subject(self, subject_id: int) -> JsonObject: ...
