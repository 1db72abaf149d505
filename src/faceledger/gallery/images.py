"""Optional store of the images behind enrolled templates and of search probes, for human review.

A reviewer must look at faces, not scores, so the service keeps the bytes of each enrolled
image beside its template. The rows hang off the template by a foreign key with ``ON DELETE
CASCADE``: whatever erases a template (subject or gallery deletion, retention, CLI or API)
erases its image in the same transaction, with no code path to forget. Probe images of
searches are kept by search id so a second reviewer sees what the first saw, until retention
(``faceledger.usecases.erasure.apply_retention``) deletes them. With a template key configured
the bytes are AES-GCM encrypted like the templates.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from PIL import Image, UnidentifiedImageError

from faceledger.audit.records import parse_timestamp
from faceledger.audit.sqlutil import create_tables
from faceledger.errors import (
    BadImage,
    Conflict,
    EncryptionKeyError,
    IntegrityError,
    NotFound,
    StoreError,
)
from faceledger.review.schema import searches
from faceledger.store import (
    TemplateCipher,
    is_sqlite,
    read_transaction,
    translate_errors,
    write_transaction,
)
from faceledger.store.schema import templates

log = logging.getLogger("faceledger.images")

metadata = sa.MetaData()
_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

enrolled_images = sa.Table(
    "enrolled_images",
    metadata,
    sa.Column(
        "template_id",
        _BIG,
        sa.ForeignKey(templates.c.id, ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("encrypted", sa.Boolean(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
)

probe_images = sa.Table(
    "probe_images",
    metadata,
    sa.Column("search_id", sa.String(32), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(64), nullable=False),
    sa.Column("encrypted", sa.Boolean(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("faces", sa.Text(), nullable=False),  # JSON: box and quality of each probe face
    sa.Column("created_at", sa.String(32), nullable=False),
)

_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "PPM": "image/x-portable-anymap",
}
BROWSER_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
"""Media types every browser shows; others are converted to PNG when served."""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    media_type: str
    data: bytes
    created_at: str
    faces: tuple[dict[str, Any], ...] = ()
    """For a probe: the box and quality report of each face searched."""


@dataclass(frozen=True)
class KeptProbe:
    """A kept probe image as retention sees it: whose search, when, over which galleries."""

    search_id: str
    sha256: str
    searched_at: datetime | None
    """When the search was recorded (the audit clock); None when no search is on record."""
    galleries: tuple[str, ...]
    """The galleries the search named (empty when no search is on record)."""


def kept_probes(conn: sa.Connection) -> list[KeptProbe]:
    """Every kept probe image with its search's time and galleries, oldest search first.

    Ages come from the search record, not from the image row, so that they follow the same
    (injectable) clock as the audit log. The image bytes are not read. A database the
    service never ran on has no probe table, hence no probes.
    """
    if not sa.inspect(conn).has_table(probe_images.name):
        return []
    p, s = probe_images, searches
    rows = conn.execute(
        sa.select(p.c.search_id, p.c.sha256, s.c.created_at, s.c.galleries)
        .select_from(p.outerjoin(s, s.c.search_id == p.c.search_id))
        .order_by(s.c.created_at, p.c.search_id)
    )
    return [
        KeptProbe(
            search_id=str(r.search_id),
            sha256=str(r.sha256),
            searched_at=None if r.created_at is None else parse_timestamp(str(r.created_at)),
            galleries=() if r.galleries is None else tuple(str(g) for g in json.loads(r.galleries)),
        )
        for r in rows
    ]


def delete_probes(conn: sa.Connection, search_ids: Sequence[str]) -> int:
    """Delete the kept probe images of ``search_ids`` on ``conn`` (the caller's transaction,
    so that the deletion and its audit entry commit together); returns how many went."""
    removed = 0
    ids = sorted(set(search_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        done = conn.execute(probe_images.delete().where(probe_images.c.search_id.in_(chunk)))
        removed += int(done.rowcount or 0)
    return removed


def media_type_of(data: bytes) -> str:
    """The media type of encoded image bytes, read from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = str(im.format or "")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadImage(f"not a readable image: {exc}") from None
    return _MEDIA_TYPES.get(fmt, "application/octet-stream")


def browser_bytes(image: StoredImage) -> tuple[bytes, str]:
    """Bytes and media type a browser can display (PNG for formats it cannot)."""
    if image.media_type in BROWSER_TYPES:
        return image.data, image.media_type
    try:
        with Image.open(io.BytesIO(image.data)) as im:
            out = io.BytesIO()
            im.convert("RGB").save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise IntegrityError(f"stored image {image.sha256[:12]} is unreadable: {exc}") from None
    return out.getvalue(), "image/png"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ImageStore:
    """Enrolled images by template id, probe images by search id, on the store's database."""

    def __init__(self, db: sa.Engine, *, cipher: TemplateCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher
        create_tables(db, metadata)

    # -- enrolled images ---------------------------------------------------------------------

    def put(self, template_id: int, sha256: str, data: bytes, media_type: str) -> None:
        """Keep the image of a stored template (Conflict if the template is gone)."""
        blob, encrypted = self._seal(f"enrolled-image/{template_id}", template_id, data)
        with write_transaction(self._db) as conn:
            conn.execute(
                enrolled_images.insert().values(
                    template_id=template_id,
                    sha256=sha256,
                    media_type=media_type,
                    encrypted=encrypted,
                    data=blob,
                    created_at=_now(),
                )
            )

    def keep(self, template_id: int, sha256: str, data: bytes) -> bool:
        """:meth:`put`, for an enrolment that must not fail because its image could not be
        kept (its template erased meanwhile, say): False, with a warning, in that case."""
        try:
            self.put(template_id, sha256, data, media_type_of(data))
        except (Conflict, StoreError) as exc:
            log.warning("image of template %s not kept: %s", template_id, exc.message)
            return False
        return True

    def get(self, template_id: int) -> StoredImage:
        t = enrolled_images
        with read_transaction(self._db) as conn:
            row = conn.execute(sa.select(t).where(t.c.template_id == template_id)).first()
        if row is None:
            raise NotFound(f"no image is kept for template {template_id}")
        data = self._open(f"enrolled-image/{template_id}", template_id, row.data, row.encrypted)
        return StoredImage(str(row.sha256), str(row.media_type), data, str(row.created_at))

    def held(self, template_ids: Iterable[int]) -> set[int]:
        """Which of ``template_ids`` have an image kept."""
        ids = sorted({int(i) for i in template_ids})
        found: set[int] = set()
        t = enrolled_images
        with read_transaction(self._db) as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(sa.select(t.c.template_id).where(t.c.template_id.in_(chunk)))
                found.update(int(r) for r in rows.scalars())
        return found

    def hashes_held(self, sha256s: Sequence[str], gallery_id: int | None) -> list[str]:
        """Which of the image hashes still have an image kept for a template of the gallery
        (erasure checks; the same image may lawfully be enrolled in another gallery)."""
        wanted = sorted(set(sha256s))
        if gallery_id is None:
            return []
        found: set[str] = set()
        t = enrolled_images
        with read_transaction(self._db) as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = conn.execute(
                    sa.select(t.c.sha256)
                    .join(templates, templates.c.id == t.c.template_id)
                    .where(t.c.sha256.in_(chunk), templates.c.gallery_id == gallery_id)
                )
                found.update(str(r) for r in rows.scalars())
        return sorted(found)

    def count(self) -> int:
        with read_transaction(self._db) as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(enrolled_images)).scalar()
        return int(n or 0)

    # -- probe images ------------------------------------------------------------------------

    def put_probe(
        self,
        search_id: str,
        sha256: str,
        data: bytes,
        media_type: str,
        faces: Sequence[dict[str, Any]],
    ) -> None:
        blob, encrypted = self._seal(f"probe/{search_id}", 0, data)
        with write_transaction(self._db) as conn:
            conn.execute(
                probe_images.insert().values(
                    search_id=search_id,
                    sha256=sha256,
                    media_type=media_type,
                    encrypted=encrypted,
                    data=blob,
                    faces=json.dumps(list(faces)),
                    created_at=_now(),
                )
            )

    def get_probe(self, search_id: str) -> StoredImage:
        t = probe_images
        with read_transaction(self._db) as conn:
            row = conn.execute(sa.select(t).where(t.c.search_id == search_id)).first()
        if row is None:
            raise NotFound(f"no probe image is kept for search {search_id}")
        data = self._open(f"probe/{search_id}", 0, row.data, row.encrypted)
        faces = tuple(json.loads(row.faces))
        return StoredImage(str(row.sha256), str(row.media_type), data, str(row.created_at), faces)

    def probe_faces(self, search_id: str) -> tuple[dict[str, Any], ...] | None:
        """The faces recorded with a search's probe, or None when no probe is kept."""
        t = probe_images
        with read_transaction(self._db) as conn:
            raw = conn.execute(sa.select(t.c.faces).where(t.c.search_id == search_id)).scalar()
        return None if raw is None else tuple(json.loads(str(raw)))

    def compact(self) -> None:
        """PostgreSQL: rewrite the image tables so erased bytes leave the table files
        (``VACUUM FULL``). SQLite needs nothing more than the store's ``compact()``, which
        rewrites the whole file (and ``secure_delete`` already zeroes freed pages)."""
        if is_sqlite(self._db):
            return
        with (
            translate_errors("compact images"),
            self._db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        ):
            for table in (enrolled_images, probe_images):
                conn.exec_driver_sql(f"VACUUM FULL {table.name}")

    # -- encryption --------------------------------------------------------------------------

    def _seal(self, label: str, number: int, data: bytes) -> tuple[bytes, bool]:
        if self._cipher is None:
            return data, False
        # the label stands in the model-id slot of the associated data: an image ciphertext
        # never authenticates as a template, nor as another image
        return self._cipher.encrypt(number, label, data), True

    def _open(self, label: str, number: int, blob: bytes, encrypted: bool) -> bytes:
        if not encrypted:
            return bytes(blob)
        if self._cipher is None:
            raise EncryptionKeyError("stored images are encrypted and no template key is set")
        return self._cipher.decrypt(number, label, bytes(blob))
