"""Lookups and checks made inside an open transaction, shared by the store's operations.

Each takes the caller's connection, so it sees (and, where it locks, holds) the same state as
the operation that uses it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from faceledger.errors import Conflict, IntegrityError, InvalidArgument, NotFound
from faceledger.store import rows
from faceledger.store import validate as check
from faceledger.store.records import Gallery, Job, NewTemplate, Removed, Subject
from faceledger.store.schema import (
    galleries,
    gallery_generations,
    job_items,
    jobs,
    subjects,
    templates,
)

CHUNK = 500
"""Values per ``IN (...)`` list."""


def chunks(values: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(values), CHUNK):
        yield list(values[i : i + CHUNK])


def bump_generation(conn: sa.Connection, gallery_id: int) -> int:
    """Count one more change of the gallery's templates; the new generation. The row stays
    locked until the transaction ends, so generations follow the order of commits."""
    g = gallery_generations
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(g)
        .values(gallery_id=int(gallery_id), generation=1)
        .on_conflict_do_update(
            index_elements=[g.c.gallery_id], set_={"generation": g.c.generation + 1}
        )
        .returning(g.c.generation)
    )
    return int(conn.execute(stmt).scalar_one())


def generation(conn: sa.Connection, gallery_id: int) -> int:
    g = gallery_generations
    found = conn.execute(
        sa.select(g.c.generation).where(g.c.gallery_id == int(gallery_id))
    ).scalar_one_or_none()
    return 0 if found is None else int(found)


def gallery_id_by_name(conn: sa.Connection, name: str) -> int | None:
    found = conn.execute(sa.select(galleries.c.id).where(galleries.c.name == name)).scalar()
    return None if found is None else int(found)


def get_gallery(conn: sa.Connection, gallery_id: int, *, lock: bool = False) -> Gallery:
    query = sa.select(galleries).where(galleries.c.id == gallery_id)
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"no gallery with id {gallery_id}")
    return rows.gallery(row)


def get_subject(conn: sa.Connection, subject_id: int, *, lock: bool = False) -> Subject:
    query = sa.select(subjects).where(subjects.c.id == subject_id)
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"no subject with id {subject_id}")
    return rows.subject(row)


def subject_by_external_id(
    conn: sa.Connection, gallery_id: int, external_id: str
) -> Subject | None:
    row = conn.execute(
        sa.select(subjects).where(
            subjects.c.gallery_id == gallery_id, subjects.c.external_id == external_id
        )
    ).one_or_none()
    return None if row is None else rows.subject(row)


def insert_subject(conn: sa.Connection, gallery_id: int, values: dict[str, Any]) -> Subject:
    g = get_gallery(conn, gallery_id)
    if subject_by_external_id(conn, gallery_id, values["external_id"]) is not None:
        raise Conflict(
            f"gallery {g.name!r} already has a subject with external id {values['external_id']!r}"
        )
    row_values = dict(values, gallery_id=gallery_id)
    if row_values["legal_basis"] is None:
        row_values["legal_basis"] = g.legal_basis.value
    row = conn.execute(subjects.insert().values(row_values).returning(*subjects.c)).one()
    return rows.subject(row)


def get_job(conn: sa.Connection, job_id: int) -> Job:
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise NotFound(f"no enrolment job with id {job_id}")
    return rows.job(row)


def open_job_gallery(conn: sa.Connection, job_id: int) -> int:
    job = get_job(conn, job_id)
    if job.finished_at is not None:
        raise Conflict(f"enrolment job {job_id} is finished; start a new one")
    return job.gallery_id


def prepare(t: NewTemplate) -> tuple[np.ndarray[Any, Any], str]:
    if not isinstance(t, NewTemplate):
        raise InvalidArgument("add_templates takes NewTemplate records")
    if t.item_key is not None:
        check.text(t.item_key, "item key", 10_000)
    return check.vector(t.template), check.sha256(t.image_sha256)


def check_new_images(
    conn: sa.Connection, new: Sequence[NewTemplate], gallery_of: dict[int, int]
) -> None:
    by_gallery: dict[int, list[str]] = defaultdict(list)
    for t in new:
        by_gallery[gallery_of[t.subject_id]].append(t.image_sha256.lower())
    for gid, shas in by_gallery.items():
        if len(set(shas)) != len(shas):
            raise Conflict(f"the same image appears twice in one batch for gallery {gid}")
        for i in range(0, len(shas), CHUNK):
            dup = conn.execute(
                sa.select(templates.c.image_sha256).where(
                    templates.c.gallery_id == gid,
                    templates.c.image_sha256.in_(shas[i : i + CHUNK]),
                )
            ).first()
            if dup is not None:
                raise Conflict(f"gallery {gid} already holds image sha256 {dup[0]}")


def check_new_keys(conn: sa.Connection, job_id: int, keys: list[str]) -> None:
    for i in range(0, len(keys), CHUNK):
        dup = conn.execute(
            sa.select(job_items.c.item_key).where(
                job_items.c.job_id == job_id, job_items.c.item_key.in_(keys[i : i + CHUNK])
            )
        ).first()
        if dup is not None:
            raise Conflict(f"job {job_id} already recorded item {dup[0]!r}")


def erased_item_key(key: str) -> str:
    """What a job keeps of an erased subject's item: a hash of its key (a key is often a path
    naming the person), enough for a resumed job to skip the item and no more."""
    if key.startswith(ERASED_ITEM):
        return key
    return ERASED_ITEM + hashlib.sha256(key.encode("utf-8")).hexdigest()


ERASED_ITEM = "erased:"


def forget_items(conn: sa.Connection, template_ids: Sequence[int]) -> None:
    """Replace the keys of the job items that enrolled ``template_ids`` by their hashes."""
    for chunk in chunks(list(template_ids)):
        found = conn.execute(
            sa.select(job_items.c.job_id, job_items.c.item_key).where(
                job_items.c.template_id.in_(chunk)
            )
        ).all()
        for job_id, key in found:
            conn.execute(
                job_items.update()
                .where(job_items.c.job_id == job_id, job_items.c.item_key == key)
                .values(item_key=erased_item_key(str(key)), reason="subject erased")
            )


def removed(conn: sa.Connection, which: sa.ColumnElement[bool], gallery_id: int) -> Removed:
    """What deleting the subjects matching ``which`` (all in one gallery) will remove.

    The subject rows are locked first (PostgreSQL; SQLite serialises writers anyway), so a
    concurrent add_templates either commits before, and its templates are listed, or fails.
    """
    subject_rows = conn.execute(
        sa.select(subjects).where(which).order_by(subjects.c.id).with_for_update()
    ).all()
    ids = [int(r.id) for r in subject_rows]
    tpl: list[tuple[int, str]] = []
    for chunk in chunks(ids):
        tpl.extend(
            (int(i), sha)
            for i, sha in conn.execute(
                sa.select(templates.c.id, templates.c.image_sha256)
                .where(templates.c.gallery_id == gallery_id, templates.c.subject_id.in_(chunk))
                .order_by(templates.c.id)
            )
        )
    return Removed(
        tuple(rows.subject(r) for r in subject_rows),
        tuple(i for i, _ in tpl),
        tuple(s for _, s in tpl),
    )


def check_gone(conn: sa.Connection, what: Removed) -> None:
    """The cascade really removed the templates (guards against foreign keys left off)."""
    for chunk in chunks(list(what.template_ids)):
        left = conn.execute(
            sa.select(sa.func.count()).select_from(templates).where(templates.c.id.in_(chunk))
        ).scalar_one()
        if left:
            raise IntegrityError(
                "templates survived the deletion of their subject: foreign keys are not enforced"
            )
