"""The metadata store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Every public method is one transaction; writes use :func:`write_transaction` (serialised on
SQLite), so a crash at any moment leaves either all or nothing of an operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from faceledger.errors import (
    Conflict,
    IntegrityError,
    InvalidArgument,
    ModelMismatch,
    NotFound,
    StoreError,
)
from faceledger.store import queries as q
from faceledger.store import rows
from faceledger.store import validate as check
from faceledger.store.crypto import TemplateCipher
from faceledger.store.database import (
    is_sqlite,
    read_transaction,
    translate_errors,
    write_transaction,
)
from faceledger.store.export import subject_export
from faceledger.store.protocol import MetadataStore
from faceledger.store.records import (
    UNSET,
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
from faceledger.store.schema import (
    create_schema,
    galleries,
    job_items,
    jobs,
    subjects,
    templates,
)

_NAME_LEN = 200


def _utcnow() -> datetime:
    return datetime.now(UTC)


_INFO_COLUMNS = [c for c in templates.c if c.name != "vector"]


class SqlStore:
    """Galleries, subjects, templates and enrolment jobs in a SQL database.

    ``cipher``: when given, vectors are written AES-GCM encrypted and reading any vector needs
    that key. ``clock``: the source of timestamps (injected by tests of retention).
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        cipher: TemplateCipher | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine = engine
        self._cipher = cipher
        self._clock = clock
        self._written = threading.local()
        create_schema(engine)

    # ---------------------------------------------------------------- generations

    def generation(self, gallery_id: int) -> int:
        """How many times the gallery's templates have changed (any process, committed)."""
        with translate_errors("read"), self.engine.connect() as conn:
            found = q.generation(conn, gallery_id)
            conn.rollback()
            return found

    def written_generation(self, gallery_id: int) -> int | None:
        """The generation this thread's last change of ``gallery_id``'s templates made (once:
        the value is forgotten when read), or None. An index that applies that change
        itself, and was in step just before it, is in step after it without a reconcile."""
        mine: dict[int, int] = getattr(self._written, "bumps", {})
        return mine.pop(int(gallery_id), None)

    def _bumped(self, conn: sa.Connection, gallery_ids: Iterable[int]) -> None:
        self._written.bumps = {int(g): q.bump_generation(conn, g) for g in sorted(set(gallery_ids))}

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidArgument("the store's clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    # ---------------------------------------------------------------- galleries

    def create_gallery(
        self,
        name: str,
        *,
        model_id: str,
        created_by: str,
        legal_basis: LegalBasis | str,
        description: str = "",
        retention_days: int | None = None,
        index_description: JsonObject | None = None,
        retention_hours: int | None = None,
    ) -> Gallery:
        """A new gallery. Its retention period is given in days or in hours (not both), or
        not at all (subjects are kept until erased)."""
        gallery_name = check.gallery_name(name)
        days, hours = check.retention_period(retention_days, retention_hours)
        values = {
            "name": gallery_name,
            "description": description.strip() if isinstance(description, str) else "",
            "model_id": check.text(model_id, "model id", 100),
            "created_at": self._now(),
            "created_by": check.text(created_by, "created_by", _NAME_LEN),
            "retention_days": days,
            "retention_hours": hours,
            "legal_basis": check.legal_basis(legal_basis).value,
            "index_description": check.json_object(index_description or {}, "index description"),
        }
        with write_transaction(self.engine) as conn:
            if q.gallery_id_by_name(conn, gallery_name) is not None:
                raise Conflict(f"a gallery named {gallery_name!r} already exists")
            row = conn.execute(galleries.insert().values(values).returning(*galleries.c)).one()
            return rows.gallery(row)

    def get_gallery(self, gallery_id: int) -> Gallery:
        with read_transaction(self.engine) as conn:
            return q.get_gallery(conn, gallery_id)

    def get_gallery_by_name(self, name: str) -> Gallery:
        with read_transaction(self.engine) as conn:
            row = conn.execute(sa.select(galleries).where(galleries.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"no gallery named {name!r}")
        return rows.gallery(row)

    def list_galleries(self) -> list[Gallery]:
        with read_transaction(self.engine) as conn:
            found = conn.execute(sa.select(galleries).order_by(galleries.c.name)).all()
        return [rows.gallery(r) for r in found]

    def update_gallery(
        self,
        gallery_id: int,
        *,
        description: str | Unset = UNSET,
        retention_days: int | Unset | None = UNSET,
        legal_basis: LegalBasis | str | Unset = UNSET,
        index_description: JsonObject | Unset = UNSET,
        retention_hours: int | Unset | None = UNSET,
    ) -> Gallery:
        """Change what is given. A retention period set in one unit replaces one in the other
        (a gallery has one period); None clears the period of that unit."""
        values: dict[str, Any] = _retention_update(retention_days, retention_hours)
        if not isinstance(description, Unset):
            if not isinstance(description, str):
                raise InvalidArgument("description must be a string")
            values["description"] = description.strip()
        if not isinstance(legal_basis, Unset):
            values["legal_basis"] = check.legal_basis(legal_basis).value
        if not isinstance(index_description, Unset):
            values["index_description"] = check.json_object(index_description, "index description")
        with write_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            if values:
                conn.execute(galleries.update().where(galleries.c.id == gallery_id).values(values))
            return q.get_gallery(conn, gallery_id)

    def delete_gallery(self, gallery_id: int) -> Removed:
        """Delete a gallery with its subjects, templates and jobs."""
        self._written.bumps = {}
        with write_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id, lock=True)
            removed = q.removed(conn, subjects.c.gallery_id == gallery_id, gallery_id)
            conn.execute(galleries.delete().where(galleries.c.id == gallery_id))
            q.check_gone(conn, removed)
            self._bumped(conn, [gallery_id])
            return removed

    # ---------------------------------------------------------------- subjects

    def add_subject(
        self,
        gallery_id: int,
        external_id: str,
        *,
        enrolled_by: str,
        display_name: str | None = None,
        attributes: JsonObject | None = None,
        legal_basis: LegalBasis | str | None = None,
        source: str | None = None,
    ) -> Subject:
        """Add a subject; :class:`Conflict` if the external id is taken in the gallery.

        ``legal_basis`` defaults to the gallery's.
        """
        values = self._subject_values(
            external_id, enrolled_by, display_name, attributes, legal_basis, source
        )
        with write_transaction(self.engine) as conn:
            return q.insert_subject(conn, gallery_id, values)

    def ensure_subject(
        self,
        gallery_id: int,
        external_id: str,
        *,
        enrolled_by: str,
        display_name: str | None = None,
        attributes: JsonObject | None = None,
        legal_basis: LegalBasis | str | None = None,
        source: str | None = None,
        connection: sa.Connection | None = None,
    ) -> tuple[Subject, bool]:
        """The subject with this external id, added first if missing; True when added.

        Safe under concurrent enrolment: a writer that loses the race gets the winner's row.
        ``connection``: write inside the caller's transaction (as :meth:`add_templates`), so
        a new subject commits with its first template or not at all; the caller serialises
        such writers (the audit log's append lock does).
        """
        values = self._subject_values(
            external_id, enrolled_by, display_name, attributes, legal_basis, source
        )
        if connection is not None:
            self._check_connection(connection)
            with translate_errors("write"):
                found = q.subject_by_external_id(connection, gallery_id, values["external_id"])
                if found is not None:
                    return found, False
                return q.insert_subject(connection, gallery_id, values), True
        try:
            with write_transaction(self.engine) as conn:
                found = q.subject_by_external_id(conn, gallery_id, values["external_id"])
                if found is not None:
                    return found, False
                return q.insert_subject(conn, gallery_id, values), True
        except Conflict:
            existing = self.find_subject(gallery_id, values["external_id"])
            if existing is None:
                raise
            return existing, False

    def _subject_values(
        self,
        external_id: str,
        enrolled_by: str,
        display_name: str | None,
        attributes: JsonObject | None,
        legal_basis: LegalBasis | str | None,
        source: str | None,
    ) -> dict[str, Any]:
        return {
            "external_id": check.text(external_id, "external id", _NAME_LEN),
            "display_name": check.optional_text(display_name, "display name", 400),
            "attributes": check.json_object(attributes or {}, "attributes"),
            "legal_basis": None if legal_basis is None else check.legal_basis(legal_basis).value,
            "source": check.optional_text(source, "source", 10_000),
            "enrolled_at": self._now(),
            "enrolled_by": check.text(enrolled_by, "enrolled_by", _NAME_LEN),
        }

    def get_subject(self, subject_id: int) -> Subject:
        with read_transaction(self.engine) as conn:
            return q.get_subject(conn, subject_id)

    def get_subjects(self, subject_ids: Iterable[int]) -> dict[int, Subject]:
        """The subjects among ``subject_ids`` that exist (missing ids are simply absent)."""
        wanted = check.ids(subject_ids, "subject ids")
        out: dict[int, Subject] = {}
        with read_transaction(self.engine) as conn:
            for chunk in q.chunks(wanted):
                for r in conn.execute(sa.select(subjects).where(subjects.c.id.in_(chunk))):
                    out[int(r.id)] = rows.subject(r)
        return out

    def find_subject(self, gallery_id: int, external_id: str) -> Subject | None:
        with read_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            return q.subject_by_external_id(
                conn, gallery_id, check.text(external_id, "external id", _NAME_LEN)
            )

    def list_subjects(
        self, gallery_id: int, *, limit: int = 100, cursor: str | None = None
    ) -> Page[Subject]:
        """Subjects of a gallery in enrolment order, ``limit`` at a time (keyset pagination)."""
        limit = check.page_limit(limit)
        after = check.cursor(cursor)
        with read_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            found = conn.execute(
                sa.select(subjects)
                .where(subjects.c.gallery_id == gallery_id, subjects.c.id > after)
                .order_by(subjects.c.id)
                .limit(limit + 1)
            ).all()
        items = tuple(rows.subject(r) for r in found[:limit])
        more = len(found) > limit
        return Page(items, str(items[-1].id) if more else None)

    def update_subject(
        self,
        subject_id: int,
        *,
        display_name: str | Unset | None = UNSET,
        attributes: JsonObject | Unset = UNSET,
        legal_basis: LegalBasis | str | Unset = UNSET,
        source: str | Unset | None = UNSET,
    ) -> Subject:
        values: dict[str, Any] = {}
        if not isinstance(display_name, Unset):
            values["display_name"] = check.optional_text(display_name, "display name", 400)
        if not isinstance(attributes, Unset):
            values["attributes"] = check.json_object(attributes, "attributes")
        if not isinstance(legal_basis, Unset):
            values["legal_basis"] = check.legal_basis(legal_basis).value
        if not isinstance(source, Unset):
            values["source"] = check.optional_text(source, "source", 10_000)
        with write_transaction(self.engine) as conn:
            q.get_subject(conn, subject_id)
            if values:
                conn.execute(subjects.update().where(subjects.c.id == subject_id).values(values))
            return q.get_subject(conn, subject_id)

    def delete_subject(self, subject_id: int) -> Removed:
        """Delete a subject and its templates. Job records keep each item as handled (so a
        resumed job does not enrol it again) under a hash of its key, with no link."""
        self._written.bumps = {}
        with write_transaction(self.engine) as conn:
            s = q.get_subject(conn, subject_id, lock=True)
            removed = q.removed(conn, subjects.c.id == subject_id, s.gallery_id)
            q.forget_items(conn, removed.template_ids)
            conn.execute(subjects.delete().where(subjects.c.id == subject_id))
            q.check_gone(conn, removed)
            if removed.template_ids:
                self._bumped(conn, [s.gallery_id])
            return removed

    def list_expired_subjects(
        self, *, now: datetime | None = None, gallery_id: int | None = None
    ) -> list[Subject]:
        """Subjects enrolled longer ago than their gallery's retention period."""
        at = self._now() if now is None else now
        if at.tzinfo is None:
            raise InvalidArgument("now must be timezone-aware")
        out: list[Subject] = []
        with read_transaction(self.engine) as conn:
            query = sa.select(galleries).where(
                sa.or_(
                    galleries.c.retention_days.is_not(None),
                    galleries.c.retention_hours.is_not(None),
                )
            )
            if gallery_id is not None:
                q.get_gallery(conn, gallery_id)
                query = query.where(galleries.c.id == gallery_id)
            for row in conn.execute(query.order_by(galleries.c.id)).all():
                cutoff = _cutoff(at, rows.gallery(row).retention)
                if cutoff is None:
                    continue
                found = conn.execute(
                    sa.select(subjects)
                    .where(subjects.c.gallery_id == row.id, subjects.c.enrolled_at < cutoff)
                    .order_by(subjects.c.id)
                ).all()
                out.extend(rows.subject(r) for r in found)
        return out

    # ---------------------------------------------------------------- templates

    def add_template(self, new: NewTemplate, *, job_id: int | None = None) -> int:
        return self.add_templates([new], job_id=job_id)[0]

    def add_templates(
        self,
        new: Sequence[NewTemplate],
        *,
        job_id: int | None = None,
        outcomes: Sequence[ItemOutcome] = (),
        connection: sa.Connection | None = None,
    ) -> list[int]:
        """Store templates (and the job's item records) in ONE transaction; their ids, in order.

        With ``job_id``, each template with an ``item_key`` is recorded as an enrolled item of
        that job, and ``outcomes`` (rejected / skipped items) are recorded too. Nothing is
        written if anything fails: a duplicate image in the gallery or a recorded item key
        (:class:`Conflict`), an unknown subject or job (:class:`NotFound`), a model other than
        the gallery's (:class:`ModelMismatch`).

        ``connection``: a connection of this store's engine inside a write transaction the
        caller owns (e.g. :meth:`AuditLog.writing`), so the templates commit together with
        what the caller writes there, or not at all; by default a transaction of its own.
        """
        self._written.bumps = {}
        prepared = [q.prepare(t) for t in new]
        outcome_list = list(outcomes)
        for o in outcome_list:
            check.text(o.item_key, "item key", 10_000)
            if check.item_status(o.status) is ItemStatus.ENROLLED:
                raise InvalidArgument("an enrolled item is recorded with its template")
        keys = [t.item_key for t in new if t.item_key is not None] + [
            o.item_key for o in outcome_list
        ]
        if job_id is None and keys:
            raise InvalidArgument("item keys and outcomes need a job_id")
        if len(set(keys)) != len(keys):
            raise Conflict("the same item key appears twice in one batch")
        if connection is not None:
            self._check_connection(connection)
        if not prepared and not outcome_list:
            return []
        now = self._now()
        if connection is not None:
            with translate_errors("write"):
                return self._write_templates(
                    connection, new, prepared, job_id, keys, outcome_list, now
                )
        with write_transaction(self.engine) as conn:
            return self._write_templates(conn, new, prepared, job_id, keys, outcome_list, now)

    def _check_connection(self, connection: sa.Connection) -> None:
        if connection.engine is not self.engine:
            raise InvalidArgument("the connection given is not one of this store's database")
        if not connection.in_transaction():
            raise InvalidArgument("the connection given must be inside a transaction")

    def _write_templates(
        self,
        conn: sa.Connection,
        new: Sequence[NewTemplate],
        prepared: list[tuple[np.ndarray[Any, Any], str]],
        job_id: int | None,
        keys: list[str],
        outcome_list: list[ItemOutcome],
        now: datetime,
    ) -> list[int]:
        job_gallery = q.open_job_gallery(conn, job_id) if job_id is not None else None
        gallery_of = self._check_subjects(conn, new, prepared, job_gallery)
        q.check_new_images(conn, new, gallery_of)
        if job_id is not None and keys:
            q.check_new_keys(conn, job_id, keys)
        ids = self._insert_templates(conn, new, prepared, gallery_of, now)
        self._bumped(conn, (gallery_of[t.subject_id] for t in new))
        item_rows = [
            {
                "job_id": job_id,
                "item_key": t.item_key,
                "status": ItemStatus.ENROLLED.value,
                "reason": None,
                "template_id": tid,
                "recorded_at": now,
            }
            for t, tid in zip(new, ids, strict=True)
            if t.item_key is not None
        ] + [
            {
                "job_id": job_id,
                "item_key": o.item_key,
                "status": ItemStatus(o.status).value,
                "reason": o.reason,
                "template_id": None,
                "recorded_at": now,
            }
            for o in outcome_list
        ]
        if item_rows:
            conn.execute(job_items.insert(), item_rows)
        return ids

    def _check_subjects(
        self,
        conn: sa.Connection,
        new: Sequence[NewTemplate],
        prepared: list[tuple[np.ndarray[Any, Any], str]],
        job_gallery: int | None,
    ) -> dict[int, int]:
        """subject id → gallery id, after checking models, dimensions and the job's gallery."""
        subject_ids = sorted({t.subject_id for t in new})
        gallery_of: dict[int, int] = {}
        for chunk in q.chunks(subject_ids):
            for sid, gid in conn.execute(
                sa.select(subjects.c.id, subjects.c.gallery_id)
                .where(subjects.c.id.in_(chunk))
                .with_for_update(read=True)  # PostgreSQL: a concurrent delete waits for us
            ):
                gallery_of[int(sid)] = int(gid)
        missing = [s for s in subject_ids if s not in gallery_of]
        if missing:
            raise NotFound(f"no subject with id {missing[0]}")
        model_of: dict[int, str] = {}
        dim_of: dict[int, int | None] = {}
        for gid in set(gallery_of.values()):
            model_of[gid] = conn.execute(
                sa.select(galleries.c.model_id).where(galleries.c.id == gid)
            ).scalar_one()
            dim_of[gid] = conn.execute(
                sa.select(templates.c.dimension).where(templates.c.gallery_id == gid).limit(1)
            ).scalar_one_or_none()
        for t, (vec, _sha) in zip(new, prepared, strict=True):
            gid = gallery_of[t.subject_id]
            if job_gallery is not None and gid != job_gallery:
                raise InvalidArgument(
                    f"subject {t.subject_id} is not in the gallery of the job ({job_gallery})"
                )
            if t.template.model_id != model_of[gid]:
                raise ModelMismatch(
                    f"gallery {gid} holds templates of model {model_of[gid]!r}, "
                    f"not {t.template.model_id!r}"
                )
            dim = dim_of[gid]
            if dim is not None and vec.shape[0] != dim:
                raise ModelMismatch(
                    f"gallery {gid} holds {dim}-dimensional templates, not {vec.shape[0]}"
                )
            dim_of[gid] = vec.shape[0]
        return gallery_of

    def _insert_templates(
        self,
        conn: sa.Connection,
        new: Sequence[NewTemplate],
        prepared: list[tuple[np.ndarray[Any, Any], str]],
        gallery_of: dict[int, int],
        now: datetime,
    ) -> list[int]:
        if not new:
            return []
        cipher = self._cipher
        values = [
            {
                "subject_id": t.subject_id,
                "gallery_id": gallery_of[t.subject_id],
                "image_sha256": sha,
                "quality_score": check.quality_score(t.quality_score),
                "quality": None if t.quality is None else check.json_object(t.quality, "quality"),
                "model_id": t.template.model_id,
                "dimension": int(vec.shape[0]),
                # encrypted vectors are written once the id (bound into the ciphertext) is known
                "vector": b"" if cipher is not None else vec.astype("<f4").tobytes(),
                "key_id": None if cipher is None else cipher.key_id,
                "created_at": now,
            }
            for t, (vec, sha) in zip(new, prepared, strict=True)
        ]
        result = conn.execute(
            templates.insert().returning(templates.c.id, sort_by_parameter_order=True), values
        )
        ids = [int(i) for i in result.scalars().all()]
        if cipher is not None:
            conn.execute(
                templates.update()
                .where(templates.c.id == sa.bindparam("tid"))
                .values(vector=sa.bindparam("blob")),
                [
                    {
                        "tid": tid,
                        "blob": cipher.encrypt(
                            tid, t.template.model_id, vec.astype("<f4").tobytes()
                        ),
                    }
                    for tid, t, (vec, _sha) in zip(ids, new, prepared, strict=True)
                ],
            )
        return ids

    def has_image(self, gallery_id: int, image_sha256: str) -> bool:
        sha = check.sha256(image_sha256)
        with read_transaction(self.engine) as conn:
            found = conn.execute(
                sa.select(templates.c.id).where(
                    templates.c.gallery_id == gallery_id, templates.c.image_sha256 == sha
                )
            ).first()
        return found is not None

    def get_templates(self, template_ids: Iterable[int]) -> dict[int, StoredTemplate]:
        """The templates among ``template_ids`` that exist, with vectors (missing ids absent)."""
        wanted = check.ids(template_ids, "template ids")
        out: dict[int, StoredTemplate] = {}
        with read_transaction(self.engine) as conn:
            for chunk in q.chunks(wanted):
                for r in conn.execute(sa.select(templates).where(templates.c.id.in_(chunk))):
                    out[int(r.id)] = StoredTemplate(
                        rows.template_info(r), rows.vector(r, self._cipher)
                    )
        return out

    def list_templates(self, subject_id: int) -> list[TemplateInfo]:
        with read_transaction(self.engine) as conn:
            q.get_subject(conn, subject_id)
            found = conn.execute(
                sa.select(*_INFO_COLUMNS)
                .where(templates.c.subject_id == subject_id)
                .order_by(templates.c.id)
            ).all()
        return [rows.template_info(r) for r in found]

    def template_counts(self, subject_ids: Iterable[int]) -> dict[int, int]:
        """How many templates each of ``subject_ids`` holds (unknown or empty subjects: 0)."""
        wanted = check.ids(subject_ids, "subject ids")
        out = dict.fromkeys(wanted, 0)
        with read_transaction(self.engine) as conn:
            for chunk in q.chunks(wanted):
                found = conn.execute(
                    sa.select(templates.c.subject_id, sa.func.count())
                    .where(templates.c.subject_id.in_(chunk))
                    .group_by(templates.c.subject_id)
                ).all()
                for subject, count in found:
                    out[int(subject)] = int(count)
        return out

    def template_ids(self, gallery_id: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """All template ids of a gallery, ascending (to check a vector index against)."""
        with read_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            found = conn.execute(
                sa.select(templates.c.id)
                .where(templates.c.gallery_id == gallery_id)
                .order_by(templates.c.id)
            ).scalars()
            return np.fromiter((int(i) for i in found), dtype=np.int64)

    def iter_templates(self, gallery_id: int, *, batch_size: int = 1024) -> Iterator[TemplateBatch]:
        """A gallery's templates in id order, ``batch_size`` at a time, to (re)build an index.

        Each batch is read in its own short transaction (no lock is held between batches):
        writes made during the iteration may or may not be seen, so a rebuild concurrent with
        enrolment must be reconciled with :meth:`template_ids` afterwards.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgument("batch_size must be a positive whole number")
        self.get_gallery(gallery_id)
        after = 0
        while True:
            with read_transaction(self.engine) as conn:
                found = conn.execute(
                    sa.select(
                        templates.c.id,
                        templates.c.subject_id,
                        templates.c.model_id,
                        templates.c.dimension,
                        templates.c.vector,
                        templates.c.key_id,
                    )
                    .where(templates.c.gallery_id == gallery_id, templates.c.id > after)
                    .order_by(templates.c.id)
                    .limit(batch_size)
                ).all()
            if not found:
                return
            vectors = [rows.vector(r, self._cipher) for r in found]
            if len({v.shape[0] for v in vectors}) != 1:
                raise IntegrityError(f"gallery {gallery_id} holds templates of several dimensions")
            yield TemplateBatch(
                ids=np.array([int(r.id) for r in found], dtype=np.int64),
                subject_ids=np.array([int(r.subject_id) for r in found], dtype=np.int64),
                vectors=np.stack(vectors).astype(np.float32, copy=False),
            )
            after = int(found[-1].id)
            if len(found) < batch_size:
                return

    def delete_template(self, template_id: int) -> Removed:
        self._written.bumps = {}
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                sa.select(templates.c.id, templates.c.image_sha256, templates.c.gallery_id).where(
                    templates.c.id == template_id
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"no template with id {template_id}")
            conn.execute(templates.delete().where(templates.c.id == template_id))
            self._bumped(conn, [int(row.gallery_id)])
            return Removed((), (int(row.id),), (row.image_sha256,))

    def encrypt_stored_templates(self) -> int:
        """Encrypt, with the configured key, every template stored in the clear; how many."""
        cipher = self._cipher
        if cipher is None:
            raise InvalidArgument("no template key is configured")
        done = 0
        while True:
            with write_transaction(self.engine) as conn:
                found = conn.execute(
                    sa.select(templates.c.id, templates.c.model_id, templates.c.vector)
                    .where(templates.c.key_id.is_(None))
                    .order_by(templates.c.id)
                    .limit(q.CHUNK)
                ).all()
                for r in found:
                    blob = cipher.encrypt(int(r.id), r.model_id, bytes(r.vector))
                    conn.execute(
                        templates.update()
                        .where(templates.c.id == r.id)
                        .values(vector=blob, key_id=cipher.key_id)
                    )
            done += len(found)
            if len(found) < q.CHUNK:
                return done

    def check_encryption(self) -> None:
        """Raise :class:`EncryptionKeyError` if some stored vector cannot be read with the
        configured key (or lack of one). Call once at start-up for an early, clear error."""
        with read_transaction(self.engine) as conn:
            key_ids = set(conn.execute(sa.select(templates.c.key_id).distinct()).scalars().all())
            for key_id in key_ids:
                row = conn.execute(
                    sa.select(templates)
                    .where(
                        templates.c.key_id.is_(None)
                        if key_id is None
                        else templates.c.key_id == key_id
                    )
                    .limit(1)
                ).one()
                rows.vector(row, self._cipher)

    # ---------------------------------------------------------------- jobs

    def start_job(self, gallery_id: int, source: str, *, started_by: str) -> Job:
        values = {
            "gallery_id": gallery_id,
            "source": check.text(source, "job source", 10_000),
            "started_at": self._now(),
            "started_by": check.text(started_by, "started_by", _NAME_LEN),
            "finished_at": None,
        }
        with write_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            row = conn.execute(jobs.insert().values(values).returning(*jobs.c)).one()
            return rows.job(row)

    def get_job(self, job_id: int) -> Job:
        with read_transaction(self.engine) as conn:
            return q.get_job(conn, job_id)

    def list_jobs(self, gallery_id: int) -> list[Job]:
        """The gallery's enrolment jobs, oldest first."""
        with read_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            found = conn.execute(
                sa.select(jobs).where(jobs.c.gallery_id == gallery_id).order_by(jobs.c.id)
            ).all()
        return [rows.job(r) for r in found]

    def find_open_job(self, gallery_id: int, source: str) -> Job | None:
        """The latest unfinished job of this gallery and source: the one to resume."""
        with read_transaction(self.engine) as conn:
            q.get_gallery(conn, gallery_id)
            row = conn.execute(
                sa.select(jobs)
                .where(
                    jobs.c.gallery_id == gallery_id,
                    jobs.c.source == check.text(source, "job source", 10_000),
                    jobs.c.finished_at.is_(None),
                )
                .order_by(jobs.c.id.desc())
                .limit(1)
            ).one_or_none()
        return None if row is None else rows.job(row)

    def finish_job(self, job_id: int) -> Job:
        with write_transaction(self.engine) as conn:
            job = q.get_job(conn, job_id)
            if job.finished_at is not None:
                raise Conflict(f"job {job_id} is already finished")
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=self._now()))
            return q.get_job(conn, job_id)

    def record_outcomes(self, job_id: int, outcomes: Sequence[ItemOutcome]) -> None:
        """Record items that produced no template (one transaction)."""
        self.add_templates([], job_id=job_id, outcomes=outcomes)

    def job_item_keys(self, job_id: int) -> set[str]:
        """The item keys already recorded for a job: a resumed job skips these (and the items
        whose key is recorded as :func:`erased_item_key`)."""
        with read_transaction(self.engine) as conn:
            q.get_job(conn, job_id)
            return set(
                conn.execute(
                    sa.select(job_items.c.item_key).where(job_items.c.job_id == job_id)
                ).scalars()
            )

    def list_job_items(self, job_id: int, *, status: ItemStatus | None = None) -> list[JobItem]:
        with read_transaction(self.engine) as conn:
            q.get_job(conn, job_id)
            query = sa.select(job_items).where(job_items.c.job_id == job_id)
            if status is not None:
                query = query.where(job_items.c.status == check.item_status(status).value)
            found = conn.execute(query.order_by(job_items.c.recorded_at, job_items.c.item_key))
            return [rows.job_item(r) for r in found]

    # ---------------------------------------------------------------- whole store

    def counts(self, gallery_id: int | None = None) -> Counts:
        with read_transaction(self.engine) as conn:
            n_sub = sa.select(sa.func.count()).select_from(subjects)
            n_tpl = sa.select(sa.func.count()).select_from(templates)
            if gallery_id is not None:
                q.get_gallery(conn, gallery_id)
                n_sub = n_sub.where(subjects.c.gallery_id == gallery_id)
                n_tpl = n_tpl.where(templates.c.gallery_id == gallery_id)
                n_gal = 1
            else:
                n_gal = conn.execute(sa.select(sa.func.count()).select_from(galleries)).scalar_one()
            return Counts(
                int(n_gal),
                int(conn.execute(n_sub).scalar_one()),
                int(conn.execute(n_tpl).scalar_one()),
            )

    def compact(self) -> None:
        """Rewrite the storage so deleted data is gone from the files and space is returned.

        SQLite: ``VACUUM`` then a truncating WAL checkpoint (fails with :class:`StoreError`
        while another connection holds a read transaction open). PostgreSQL: ``VACUUM FULL``
        of the store's tables; old row versions can still sit in PostgreSQL's WAL segments
        until they are recycled, which is the server's business.
        """
        if is_sqlite(self.engine):
            self._compact_sqlite()
            return
        with (
            translate_errors("compact"),
            self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            for table in (templates, job_items, subjects, jobs, galleries):
                conn.exec_driver_sql(f"VACUUM FULL {table.name}")

    def _compact_sqlite(self) -> None:
        with translate_errors("compact"):
            raw = self.engine.raw_connection()
            try:
                dbapi = raw.driver_connection
                if dbapi is None:  # pragma: no cover - a pooled sqlite3 connection is never None
                    raise StoreError("compact: no database connection")
                dbapi.execute("VACUUM")
                busy, _log, _done = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.close()
        if busy:
            raise StoreError("compact: the WAL could not be truncated while readers are active")

    def export_subject(self, subject_id: int) -> JsonObject:
        """Everything held on one subject, JSON-serialisable (a subject access request).

        Vectors are the decrypted float32 little-endian bytes in base64.
        """
        with read_transaction(self.engine) as conn:
            return subject_export(conn, subject_id, self._cipher, self._now())


def _cutoff(at: datetime, period: timedelta | None) -> datetime | None:
    """``at`` less ``period``: who was enrolled before it has expired. None without a period,
    and for a period reaching back before the calendar (nothing can be that old)."""
    if period is None:
        return None
    try:
        return at - period
    except OverflowError:
        return None


def _retention_update(days: int | Unset | None, hours: int | Unset | None) -> dict[str, Any]:
    """The columns an update of the retention period writes: the unit given, and the other
    unit cleared when a period is set (the store holds one period, in one unit)."""
    if isinstance(days, Unset) and isinstance(hours, Unset):
        return {}
    checked_days, checked_hours = check.retention_period(
        None if isinstance(days, Unset) else days, None if isinstance(hours, Unset) else hours
    )
    values: dict[str, Any] = {}
    if not isinstance(days, Unset) or checked_hours is not None:
        values["retention_days"] = checked_days
    if not isinstance(hours, Unset) or checked_days is not None:
        values["retention_hours"] = checked_hours
    return values


if TYPE_CHECKING:
    _conforms: type[MetadataStore] = SqlStore
