"""The subject access request: everything held on one subject as one JSON document."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from faceledger.store import queries as q
from faceledger.store import rows
from faceledger.store.crypto import TemplateCipher
from faceledger.store.records import JsonObject
from faceledger.store.schema import job_items, jobs, templates

EXPORT_FORMAT = "faceledger-subject-export/1"


def subject_export(
    conn: sa.Connection, subject_id: int, cipher: TemplateCipher | None, now: datetime
) -> JsonObject:
    """Subject, gallery, templates (decrypted vectors, base64) and enrolment records.

    Reads through ``conn`` (one read transaction: a consistent picture); the result is plain
    JSON values only.
    """
    s = q.get_subject(conn, subject_id)
    g = q.get_gallery(conn, s.gallery_id)
    tpl_rows = conn.execute(
        sa.select(templates).where(templates.c.subject_id == subject_id).order_by(templates.c.id)
    ).all()
    items: list[Any] = []
    for chunk in q.chunks([int(r.id) for r in tpl_rows]):
        items.extend(
            conn.execute(
                sa.select(job_items, jobs.c.source)
                .join(jobs, jobs.c.id == job_items.c.job_id)
                .where(job_items.c.template_id.in_(chunk))
                .order_by(job_items.c.template_id)
            ).all()
        )
    exported_templates = []
    for r in tpl_rows:
        info = rows.template_info(r)
        vec = rows.vector(r, cipher)
        exported_templates.append(
            {
                "id": info.id,
                "image_sha256": info.image_sha256,
                "model_id": info.model_id,
                "dimension": info.dimension,
                "quality_score": info.quality_score,
                "quality": info.quality,
                "created_at": info.created_at.isoformat(),
                "encrypted_at_rest": info.encrypted,
                "vector_encoding": "float32-le-base64",
                "vector": base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii"),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "gallery": {
            "id": g.id,
            "name": g.name,
            "description": g.description,
            "model_id": g.model_id,
            "retention_days": g.retention_days,
            "retention_hours": g.retention_hours,
        },
        "subject": {
            "id": s.id,
            "external_id": s.external_id,
            "display_name": s.display_name,
            "attributes": s.attributes,
            "legal_basis": s.legal_basis.value,
            "source": s.source,
            "enrolled_at": s.enrolled_at.isoformat(),
            "enrolled_by": s.enrolled_by,
        },
        "templates": exported_templates,
        "enrolment_records": [
            {
                "job_id": int(r.job_id),
                "job_source": r.source,
                "item_key": r.item_key,
                "status": r.status,
                "reason": r.reason,
                "template_id": int(r.template_id),
                "recorded_at": r.recorded_at.isoformat(),
            }
            for r in items
        ],
    }
