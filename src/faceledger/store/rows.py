"""Conversion of SQL rows into the store's records, and of stored vectors back into floats.

Vector decoding is where encryption at rest is enforced: an encrypted row without the right key,
or a plaintext row while a key is configured, is an error, never a vector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceledger.errors import EncryptionKeyError, IntegrityError
from faceledger.store.crypto import TemplateCipher
from faceledger.store.records import (
    Gallery,
    ItemStatus,
    Job,
    JobItem,
    LegalBasis,
    Subject,
    TemplateInfo,
)
from faceledger.types import Vector


def gallery(row: Any) -> Gallery:
    return Gallery(
        id=int(row.id),
        name=row.name,
        description=row.description,
        model_id=row.model_id,
        created_at=row.created_at,
        created_by=row.created_by,
        retention_days=row.retention_days,
        legal_basis=LegalBasis(row.legal_basis),
        index_description=dict(row.index_description or {}),
        retention_hours=row.retention_hours,
    )


def subject(row: Any) -> Subject:
    return Subject(
        id=int(row.id),
        gallery_id=int(row.gallery_id),
        external_id=row.external_id,
        display_name=row.display_name,
        attributes=dict(row.attributes or {}),
        legal_basis=LegalBasis(row.legal_basis),
        source=row.source,
        enrolled_at=row.enrolled_at,
        enrolled_by=row.enrolled_by,
    )


def template_info(row: Any) -> TemplateInfo:
    return TemplateInfo(
        id=int(row.id),
        subject_id=int(row.subject_id),
        gallery_id=int(row.gallery_id),
        image_sha256=row.image_sha256,
        quality_score=row.quality_score,
        quality=None if row.quality is None else dict(row.quality),
        model_id=row.model_id,
        dimension=int(row.dimension),
        created_at=row.created_at,
        encrypted=row.key_id is not None,
    )


def job(row: Any) -> Job:
    return Job(
        id=int(row.id),
        gallery_id=int(row.gallery_id),
        source=row.source,
        started_at=row.started_at,
        started_by=row.started_by,
        finished_at=row.finished_at,
    )


def job_item(row: Any) -> JobItem:
    return JobItem(
        job_id=int(row.job_id),
        item_key=row.item_key,
        status=ItemStatus(row.status),
        reason=row.reason,
        template_id=None if row.template_id is None else int(row.template_id),
        recorded_at=row.recorded_at,
    )


def vector(row: Any, cipher: TemplateCipher | None) -> Vector:
    """The float32 vector of a template row (needs id, model_id, dimension, vector, key_id)."""
    tid = int(row.id)
    blob = bytes(row.vector)
    if row.key_id is not None:
        if cipher is None:
            raise EncryptionKeyError(
                f"template {tid} is encrypted (key {row.key_id}) and no template key is configured"
            )
        if cipher.key_id != row.key_id:
            raise EncryptionKeyError(
                f"template {tid} was encrypted with key {row.key_id}; "
                f"the configured key is {cipher.key_id}"
            )
        blob = cipher.decrypt(tid, row.model_id, blob)
    elif cipher is not None:
        # a plaintext row under a configured key could have been planted by whoever can write
        # the database; encrypt existing rows with SqlStore.encrypt_stored_templates()
        raise EncryptionKeyError(
            f"template {tid} is stored unencrypted although a template key is configured"
        )
    if len(blob) != 4 * int(row.dimension):
        raise IntegrityError(
            f"template {tid}: {len(blob)} vector bytes for dimension {row.dimension}"
        )
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
