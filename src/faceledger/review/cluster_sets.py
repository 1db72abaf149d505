"""Kept cluster sets: the faces of one ``cluster`` request, held for review until retention.

A set is one clustering request kept (``faceledger cluster --keep``): its purpose and case,
who made it, the model and the threshold with its FMR, and each face's image hash, box,
quality, template and a small crop (both AES-GCM encrypted with the workspace's template key
when one is set), its cluster and its ambiguity flag. Reviewers merge, split, name and
dismiss clusters, and undo the last action; each action and its audit entry are written in
one transaction. Only the set's creator and reviewers of the creator's organisation may read
a set; a local operator (no credential) may read but not review. A set is deleted, with
everything it holds, when its retention period runs out (:meth:`ClusterSets.purge_expired`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from faceledger.access.names import same_person
from faceledger.access.policy import DEFAULT_ORG, Role, User
from faceledger.audit.log import AuditLog
from faceledger.audit.records import AuditOp, AuditRecord, format_timestamp, parse_timestamp
from faceledger.audit.sqlutil import create_tables, translate_errors
from faceledger.errors import (
    AuthenticationFailed,
    CannotLink,
    Conflict,
    EncryptionKeyError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from faceledger.store import TemplateCipher
from faceledger.types import Box

MAX_LABEL_CHARS = 200
MAX_REASON_CHARS = 4000
ACTIONS = ("merge", "split", "name", "dismiss", "undo", "enrol")

metadata = sa.MetaData()
_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

sets = sa.Table(
    "cluster_sets",
    metadata,
    sa.Column("set_id", sa.String(32), primary_key=True),
    sa.Column("purpose", sa.Text(), nullable=False),
    sa.Column("case_ref", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("owner_org", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("model_id", sa.String(128), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=False),
    sa.Column("target_fmr", sa.Float(), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.Index("ix_cluster_sets_expires", "expires_at"),
)

faces = sa.Table(
    "cluster_set_faces",
    metadata,
    sa.Column("set_id", sa.String(32), sa.ForeignKey("cluster_sets.set_id"), primary_key=True),
    sa.Column("face_no", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Column("face_index", sa.Integer(), nullable=False),
    sa.Column("box_left", sa.Float(), nullable=False),
    sa.Column("box_top", sa.Float(), nullable=False),
    sa.Column("box_right", sa.Float(), nullable=False),
    sa.Column("box_bottom", sa.Float(), nullable=False),
    sa.Column("quality", sa.Float(), nullable=False),
    sa.Column("seedable", sa.Boolean(), nullable=False),
    sa.Column("encrypted", sa.Boolean(), nullable=False),
    sa.Column("template", sa.LargeBinary(), nullable=False),
    sa.Column("crop", sa.LargeBinary(), nullable=True),
    sa.Column("cluster", sa.Integer(), nullable=False),
    sa.Column("ambiguous", sa.Boolean(), nullable=False),
)

tracks = sa.Table(
    "cluster_set_tracks",
    metadata,
    sa.Column("set_id", sa.String(32), sa.ForeignKey("cluster_sets.set_id"), primary_key=True),
    sa.Column("face_no", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("start_s", sa.Float(), nullable=False),
    sa.Column("end_s", sa.Float(), nullable=False),
)
"""The time span of a kept face that is a video track (no row: a face of an image). A table
of its own, so sets kept before video inputs existed need no rewrite."""

clusters = sa.Table(
    "cluster_set_clusters",
    metadata,
    sa.Column("set_id", sa.String(32), sa.ForeignKey("cluster_sets.set_id"), primary_key=True),
    sa.Column("cluster", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("label", sa.Text(), nullable=True),
    sa.Column("dismissed", sa.Boolean(), nullable=False),
    sa.Column("dismiss_reason", sa.Text(), nullable=True),
)
"""A reviewer's label or dismissal of a cluster (no row: neither)."""

actions = sa.Table(
    "cluster_set_actions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("set_id", sa.String(32), sa.ForeignKey("cluster_sets.set_id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("acted_at", sa.String(32), nullable=False),
    sa.Column("details", sa.Text(), nullable=False),  # JSON, with what undo needs
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.Column("undone", sa.Boolean(), nullable=False),
    sa.Index("ix_cluster_set_actions_set", "set_id", "id"),
)


@dataclass(frozen=True)
class KeptFace:
    """A face to keep in a new set: what clustering found, with its template and crop."""

    image_sha256: str
    face_index: int
    box: Box
    quality: float
    seedable: bool
    vector: np.ndarray[Any, Any]
    crop: bytes | None
    cluster: int
    ambiguous: bool
    span: tuple[float, float] | None = None
    """A video track's (start, end) in seconds; ``image_sha256`` is then the video's and
    ``face_index`` the track's number. None: a face of an image."""


@dataclass(frozen=True)
class SetFace:
    face_no: int
    image_sha256: str
    face_index: int
    box: Box
    quality: float
    seedable: bool
    cluster: int
    """-1: in no cluster."""
    ambiguous: bool
    has_crop: bool
    span: tuple[float, float] | None = None
    """A video track's (start, end) in seconds (see :class:`KeptFace`)."""

    def cannot_link(self, other: SetFace) -> bool:
        """Two faces of one image, or two tracks of one video on screen at once."""
        if self.image_sha256 != other.image_sha256:
            return False
        if self.span is None or other.span is None:
            return True
        return self.span[0] <= other.span[1] and other.span[0] <= self.span[1]


@dataclass(frozen=True)
class SetCluster:
    cluster: int
    faces: tuple[int, ...]
    label: str | None = None
    dismissed: bool = False
    dismiss_reason: str | None = None


@dataclass(frozen=True)
class ClusterAction:
    id: int
    action: str
    actor: str
    acted_at: datetime
    details: dict[str, Any]
    audit_seq: int
    undone: bool


@dataclass(frozen=True)
class ClusterSet:
    set_id: str
    purpose: str
    case_ref: str
    created_by: str
    owner_org: str
    created_at: datetime
    expires_at: datetime
    model_id: str
    threshold: float
    target_fmr: float
    method: str
    audit_seq: int
    faces: tuple[SetFace, ...]
    clusters: tuple[SetCluster, ...]
    """Clusters holding at least one face, by id."""
    actions: tuple[ClusterAction, ...] = field(default=())

    def cluster(self, k: int) -> SetCluster:
        for c in self.clusters:
            if c.cluster == k:
                return c
        raise NotFound(f"cluster set {self.set_id} has no cluster {k}")


@dataclass(frozen=True)
class SetSummary:
    """A kept set as listed: who kept it, why and when, how many faces and clusters."""

    set_id: str
    purpose: str
    case_ref: str
    created_by: str
    owner_org: str
    created_at: datetime
    expires_at: datetime
    faces: int
    clusters: int


def may_read(user: User, cs: ClusterSet) -> bool:
    """The set's creator, or a reviewer of its organisation (the deployment: every one)."""
    return _may_read(user, cs.created_by, cs.owner_org)


def _may_read(user: User, created_by: str, owner_org: str) -> bool:
    if not user.active:
        return False
    if same_person(user.id, created_by):
        return True
    return Role.REVIEWER in user.roles and (user.org is None or user.org == owner_org)


def _text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is at most {limit} characters")
    return value.strip()


class ClusterSets:
    """Kept cluster sets; their tables live on the audit log's engine."""

    def __init__(self, audit: AuditLog, *, cipher: TemplateCipher | None = None) -> None:
        self._audit = audit
        self._engine = audit.engine
        self._cipher = cipher
        create_tables(self._engine, metadata)

    # -- keeping ---------------------------------------------------------------------------

    def keep(
        self,
        actor: User,
        record: AuditRecord,
        kept: Sequence[KeptFace],
        retention: timedelta,
    ) -> tuple[str, int]:
        """Append ``record`` (the clustering's one entry, which gets the set id and its
        retention in days) and keep the set until ``retention`` after that entry, in one
        transaction; the set id and the entry's number."""
        if record.operation != AuditOp.CLUSTER or record.actor != actor.id:
            raise InvalidArgument("keep() takes the acting user's 'cluster' record")
        if record.purpose is None or record.case_ref is None or record.model_id is None:
            raise InvalidArgument("a kept cluster set needs a purpose, a case and a model")
        set_id = uuid.uuid4().hex
        details = dict(record.details)
        details["cluster_set_id"] = set_id
        details["kept_days"] = retention / timedelta(days=1)
        record = replace(record, details=details)
        with self._audit.writing() as conn:
            entry = self._audit.append(record, connection=conn)
            until = entry.timestamp + retention
            conn.execute(
                sa.insert(sets).values(
                    set_id=set_id,
                    purpose=record.purpose,
                    case_ref=record.case_ref,
                    created_by=actor.id,
                    owner_org=actor.org or DEFAULT_ORG,
                    created_at=format_timestamp(entry.timestamp),
                    expires_at=format_timestamp(until),
                    model_id=record.model_id,
                    threshold=float(record.threshold or 0.0),
                    target_fmr=float(record.target_fmr or 0.0),
                    method=str(record.details.get("method", "")),
                    audit_seq=entry.seq,
                )
            )
            if kept:
                conn.execute(
                    sa.insert(faces), [self._face_row(set_id, i, f) for i, f in enumerate(kept)]
                )
            spans = [
                {"set_id": set_id, "face_no": i, "start_s": f.span[0], "end_s": f.span[1]}
                for i, f in enumerate(kept)
                if f.span is not None
            ]
            if spans:
                conn.execute(sa.insert(tracks), spans)
        return set_id, entry.seq

    def _face_row(self, set_id: str, no: int, f: KeptFace) -> dict[str, Any]:
        vec = np.asarray(f.vector, dtype="<f4").tobytes()
        crop = None if f.crop is None else self._seal(set_id, "crop", no, f.crop)
        return {
            "set_id": set_id,
            "face_no": no,
            "image_sha256": f.image_sha256,
            "face_index": int(f.face_index),
            "box_left": float(f.box.left),
            "box_top": float(f.box.top),
            "box_right": float(f.box.right),
            "box_bottom": float(f.box.bottom),
            "quality": float(f.quality),
            "seedable": bool(f.seedable),
            "encrypted": self._cipher is not None,
            "template": self._seal(set_id, "template", no, vec),
            "crop": crop,
            "cluster": int(f.cluster),
            "ambiguous": bool(f.ambiguous),
        }

    def _seal(self, set_id: str, what: str, no: int, data: bytes) -> bytes:
        if self._cipher is None:
            return data
        # the label binds the ciphertext to its set, kind and face: it never authenticates
        # as a gallery template, an image, or another face
        return self._cipher.encrypt(no, f"cluster-set/{set_id}/{what}", data)

    def _open(self, set_id: str, what: str, no: int, blob: bytes, encrypted: bool) -> bytes:
        if not encrypted:
            return bytes(blob)
        if self._cipher is None:
            raise EncryptionKeyError("kept cluster faces are encrypted and no template key is set")
        return self._cipher.decrypt(no, f"cluster-set/{set_id}/{what}", bytes(blob))

    # -- reading ---------------------------------------------------------------------------

    def get(self, user: User, set_id: str) -> ClusterSet:
        """The set, if ``user`` may read it (PermissionDenied otherwise)."""
        with translate_errors("read cluster set"), self._engine.connect() as conn:
            cs = self._load(conn, set_id)
            conn.rollback()
        _check_read(user, cs)
        return cs

    def readable(self, user: User, limit: int) -> list[SetSummary]:
        """The sets ``user`` may read (:func:`may_read`), newest first, at most ``limit``."""
        f = faces
        in_cluster = sa.case((f.c.cluster >= 0, f.c.cluster))
        counts = (
            sa.select(
                f.c.set_id,
                sa.func.count().label("n_faces"),
                sa.func.count(sa.distinct(in_cluster)).label("n_clusters"),
            )
            .group_by(f.c.set_id)
            .subquery()
        )
        query = (
            sa.select(sets, counts.c.n_faces, counts.c.n_clusters)
            .outerjoin(counts, counts.c.set_id == sets.c.set_id)
            .order_by(sets.c.created_at.desc(), sets.c.set_id)
        )
        with translate_errors("list cluster sets"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
            conn.rollback()
        mine = [r for r in rows if _may_read(user, str(r.created_by), str(r.owner_org))]
        return [_summary(r) for r in mine[: max(0, int(limit))]]

    def vectors(self, user: User, cs: ClusterSet, face_nos: Sequence[int]) -> list[np.ndarray]:
        """The templates of faces ``face_nos`` of ``cs`` (as :meth:`get` gave it to ``user``,
        who must be able to read it), for enrolment."""
        _check_read(user, cs)
        f = faces
        with translate_errors("read cluster set"), self._engine.connect() as conn:
            rows = {
                int(r.face_no): r
                for r in conn.execute(
                    sa.select(f.c.face_no, f.c.template, f.c.encrypted).where(
                        f.c.set_id == cs.set_id, f.c.face_no.in_([int(n) for n in face_nos])
                    )
                )
            }
            conn.rollback()
        out = []
        for n in face_nos:
            r = rows[int(n)]
            raw = self._open(cs.set_id, "template", int(n), r.template, bool(r.encrypted))
            out.append(np.frombuffer(raw, dtype="<f4").astype(np.float32))
        return out

    def crop(self, user: User, cs: ClusterSet, face_no: int) -> bytes:
        """The JPEG crop of one face of ``cs`` (as :meth:`get` gave it to ``user``, who must be
        able to read it)."""
        _check_read(user, cs)
        f = faces
        with translate_errors("read cluster set"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(f.c.crop, f.c.encrypted).where(
                    f.c.set_id == cs.set_id, f.c.face_no == int(face_no)
                )
            ).first()
            conn.rollback()
        if row is None or row.crop is None:
            raise NotFound(f"cluster set {cs.set_id} keeps no crop of face {face_no}")
        return self._open(cs.set_id, "crop", int(face_no), row.crop, bool(row.encrypted))

    # -- review actions --------------------------------------------------------------------

    def merge(self, user: User, set_id: str, into: int, other: int) -> ClusterSet:
        """Move every face of cluster ``other`` into ``into`` (refused with
        :class:`CannotLink` when that would join two faces of one image)."""

        def apply(conn: sa.Connection, cs: ClusterSet) -> dict[str, Any]:
            if into == other:
                raise InvalidArgument("merge two different clusters")
            a, b = _live(cs, into), _live(cs, other)
            shared = {
                cs.faces[i].image_sha256
                for i in a.faces
                for j in b.faces
                if cs.faces[i].cannot_link(cs.faces[j])
            }
            if shared:
                raise CannotLink(
                    f"clusters {into} and {other} hold faces of the same image or video frames "
                    f"({len(shared)} file(s)): two faces seen at once are two people"
                )
            _move(conn, set_id, b.faces, into)
            before = _state(b)
            conn.execute(clusters.delete().where(_cluster_row(set_id, other)))
            return {"into": into, "from": other, "moved": list(b.faces), "from_state": before}

        return self._act(user, set_id, "merge", apply)

    def split(self, user: User, set_id: str, cluster: int, face_nos: Sequence[int]) -> ClusterSet:
        """Move faces ``face_nos`` of ``cluster`` to a new cluster (the next free id)."""

        def apply(conn: sa.Connection, cs: ClusterSet) -> dict[str, Any]:
            c = _live(cs, cluster)
            chosen = sorted({int(n) for n in face_nos})
            if not chosen:
                raise InvalidArgument("name the faces to split off")
            if not set(chosen) <= set(c.faces):
                raise InvalidArgument(f"faces {chosen} are not all in cluster {cluster}")
            if len(chosen) == len(c.faces):
                raise InvalidArgument("a split leaves at least one face in the cluster")
            used = [f.cluster for f in cs.faces] + [k.cluster for k in cs.clusters]
            new = max(used, default=-1) + 1
            row = conn.execute(
                sa.select(sa.func.max(clusters.c.cluster)).where(clusters.c.set_id == set_id)
            ).scalar()
            new = max(new, -1 if row is None else int(row) + 1)
            _move(conn, set_id, chosen, new)
            return {"from": cluster, "to": new, "moved": chosen}

        return self._act(user, set_id, "split", apply)

    def name(self, user: User, set_id: str, cluster: int, label: str) -> ClusterSet:
        """Give ``cluster`` a free label (a note for the investigator, not an identity)."""
        text = _text(label, "a cluster's label", MAX_LABEL_CHARS)

        def apply(conn: sa.Connection, cs: ClusterSet) -> dict[str, Any]:
            c = _live(cs, cluster)
            _set_state(conn, set_id, cluster, {"label": text, "dismissed": False})
            return {"cluster": cluster, "label": text, "before": _state(c)}

        return self._act(user, set_id, "name", apply)

    def dismiss(self, user: User, set_id: str, cluster: int, reason: str) -> ClusterSet:
        """Reject ``cluster`` as a person (it can no longer be enrolled)."""
        why = _text(reason, "a dismissal's reason", MAX_REASON_CHARS)

        def apply(conn: sa.Connection, cs: ClusterSet) -> dict[str, Any]:
            c = _live(cs, cluster)
            state = {"label": c.label, "dismissed": True, "dismiss_reason": why}
            _set_state(conn, set_id, cluster, state)
            return {"cluster": cluster, "reason": why, "before": _state(c)}

        return self._act(user, set_id, "dismiss", apply)

    def undo(self, user: User, set_id: str) -> ClusterSet:
        """Undo the set's last review action not yet undone (an enrolment is not undone
        here: erase the subject)."""

        def apply(conn: sa.Connection, cs: ClusterSet) -> dict[str, Any]:
            todo = [a for a in cs.actions if a.action != "undo" and not a.undone]
            if not todo:
                raise Conflict(f"cluster set {set_id} has no action to undo")
            last = todo[-1]
            if last.action == "enrol":
                raise Conflict("an enrolment is not undone here: erase the subject instead")
            _revert(conn, set_id, last)
            conn.execute(actions.update().where(actions.c.id == last.id).values(undone=True))
            return {"undid": last.id, "undid_action": last.action, "undid_seq": last.audit_seq}

        return self._act(user, set_id, "undo", apply)

    def record_enrolment(
        self, conn: sa.Connection, actor: User, set_id: str, details: dict[str, Any], seq: int
    ) -> None:
        """Note on the set, in the caller's :meth:`AuditLog.writing` transaction, that a
        cluster was enrolled (audit entry ``seq``)."""
        self._insert_action(conn, set_id, "enrol", actor, details, seq)

    def _act(
        self,
        user: User,
        set_id: str,
        action: str,
        apply: Callable[[sa.Connection, ClusterSet], dict[str, Any]],
    ) -> ClusterSet:
        with self._audit.writing() as conn:
            cs = self._load(conn, set_id)
            check_review(user, cs)
            details = apply(conn, cs)
            entry = self._audit.append(
                AuditRecord(
                    operation=AuditOp.CLUSTER_REVIEW,
                    actor=user.id,
                    purpose=cs.purpose,
                    case_ref=cs.case_ref,
                    model_id=cs.model_id,
                    details={
                        "cluster_set_id": set_id,
                        "set_seq": cs.audit_seq,
                        "action": action,
                        **_audited(details),
                    },
                ),
                connection=conn,
            )
            self._insert_action(conn, set_id, action, user, details, entry.seq)
            return self._load(conn, set_id)

    def _insert_action(
        self,
        conn: sa.Connection,
        set_id: str,
        action: str,
        actor: User,
        details: dict[str, Any],
        seq: int,
    ) -> None:
        conn.execute(
            sa.insert(actions).values(
                set_id=set_id,
                action=action,
                actor=actor.id,
                acted_at=format_timestamp(self._audit.now()),
                details=json.dumps(details, sort_keys=True),
                audit_seq=seq,
                undone=False,
            )
        )

    # -- retention -------------------------------------------------------------------------

    def expired(self, now: datetime) -> list[str]:
        """Ids of the sets whose retention has run out at ``now`` (a read, no lock)."""
        with translate_errors("read cluster sets"), self._engine.connect() as conn:
            found = self._expired(conn, now)
            conn.rollback()
        return found

    @staticmethod
    def _expired(conn: sa.Connection, now: datetime) -> list[str]:
        q = sa.select(sets.c.set_id).where(sets.c.expires_at <= format_timestamp(now))
        return sorted(str(s) for s in conn.execute(q.order_by(sets.c.set_id)).scalars())

    def purge_expired(self, actor: User, now: datetime) -> list[str]:
        """Delete every set expired at ``now`` with all it holds, and write one audit entry
        naming them, in one transaction; nothing (no entry) when none has expired."""
        if not self.expired(now):
            return []
        with self._audit.writing() as conn:
            gone = self._expired(conn, now)
            if not gone:
                return []
            counts = {"faces": 0, "actions": 0}
            for start in range(0, len(gone), 500):
                chunk = gone[start : start + 500]
                conn.execute(tracks.delete().where(tracks.c.set_id.in_(chunk)))
                counts["faces"] += int(
                    conn.execute(faces.delete().where(faces.c.set_id.in_(chunk))).rowcount or 0
                )
                conn.execute(clusters.delete().where(clusters.c.set_id.in_(chunk)))
                counts["actions"] += int(
                    conn.execute(actions.delete().where(actions.c.set_id.in_(chunk))).rowcount or 0
                )
                conn.execute(sets.delete().where(sets.c.set_id.in_(chunk)))
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.CLUSTER_SET_PURGE,
                    actor=actor.id,
                    details={
                        "as_of": format_timestamp(now),
                        "cluster_set_ids": gone,
                        "sets": len(gone),
                        **counts,
                    },
                ),
                connection=conn,
            )
        return gone

    # -- loading ---------------------------------------------------------------------------

    def _load(self, conn: sa.Connection, set_id: str) -> ClusterSet:
        row = conn.execute(sa.select(sets).where(sets.c.set_id == str(set_id))).first()
        if row is None:
            raise NotFound(f"no cluster set {set_id!r}")
        f = faces
        spans = {
            int(r.face_no): (float(r.start_s), float(r.end_s))
            for r in conn.execute(sa.select(tracks).where(tracks.c.set_id == row.set_id))
        }
        found = tuple(
            SetFace(
                face_no=int(r.face_no),
                image_sha256=str(r.image_sha256),
                face_index=int(r.face_index),
                box=Box(r.box_left, r.box_top, r.box_right, r.box_bottom),
                quality=float(r.quality),
                seedable=bool(r.seedable),
                cluster=int(r.cluster),
                ambiguous=bool(r.ambiguous),
                has_crop=bool(r.has_crop),
                span=spans.get(int(r.face_no)),
            )
            for r in conn.execute(
                sa.select(
                    *[c for c in f.c if c.name not in ("template", "crop")],
                    f.c.crop.is_not(None).label("has_crop"),
                )
                .where(f.c.set_id == row.set_id)
                .order_by(f.c.face_no)
            )
        )
        states = {
            int(r.cluster): r
            for r in conn.execute(sa.select(clusters).where(clusters.c.set_id == row.set_id))
        }
        members: dict[int, list[int]] = {}
        for face in found:
            if face.cluster >= 0:
                members.setdefault(face.cluster, []).append(face.face_no)
        kept = []
        for k in sorted(members):
            st = states.get(k)
            kept.append(
                SetCluster(
                    k,
                    tuple(members[k]),
                    None if st is None or st.label is None else str(st.label),
                    st is not None and bool(st.dismissed),
                    None if st is None or st.dismiss_reason is None else str(st.dismiss_reason),
                )
            )
        a = actions
        done = tuple(
            ClusterAction(
                int(r.id),
                str(r.action),
                str(r.actor),
                parse_timestamp(r.acted_at),
                json.loads(r.details),
                int(r.audit_seq),
                bool(r.undone),
            )
            for r in conn.execute(sa.select(a).where(a.c.set_id == row.set_id).order_by(a.c.id))
        )
        return ClusterSet(
            set_id=str(row.set_id),
            purpose=str(row.purpose),
            case_ref=str(row.case_ref),
            created_by=str(row.created_by),
            owner_org=str(row.owner_org),
            created_at=parse_timestamp(row.created_at),
            expires_at=parse_timestamp(row.expires_at),
            model_id=str(row.model_id),
            threshold=float(row.threshold),
            target_fmr=float(row.target_fmr),
            method=str(row.method),
            audit_seq=int(row.audit_seq),
            faces=found,
            clusters=tuple(kept),
            actions=done,
        )


def _summary(r: sa.Row[Any]) -> SetSummary:
    return SetSummary(
        set_id=str(r.set_id),
        purpose=str(r.purpose),
        case_ref=str(r.case_ref),
        created_by=str(r.created_by),
        owner_org=str(r.owner_org),
        created_at=parse_timestamp(r.created_at),
        expires_at=parse_timestamp(r.expires_at),
        faces=int(r.n_faces or 0),
        clusters=int(r.n_clusters or 0),
    )


def _check_read(user: User, cs: ClusterSet) -> None:
    if not may_read(user, cs):
        raise PermissionDenied(
            f"cluster set {cs.set_id} is read only by its creator and reviewers of {cs.owner_org!r}"
        )


def check_review(user: User, cs: ClusterSet) -> None:
    """Whether ``user`` may act on ``cs``: read it, and hold an account (not local)."""
    _check_read(user, cs)
    if user.local:
        raise AuthenticationFailed(
            "reviewing a cluster set needs an account: set FACELEDGER_API_KEY (or "
            "FACELEDGER_API_KEY_FILE) to a key from `faceledger users issue-key`"
        )


def _live(cs: ClusterSet, k: int) -> SetCluster:
    c = cs.cluster(int(k))
    if c.dismissed:
        raise Conflict(f"cluster {k} of set {cs.set_id} was dismissed (undo that first)")
    return c


def _cluster_row(set_id: str, k: int) -> sa.ColumnElement[bool]:
    return sa.and_(clusters.c.set_id == set_id, clusters.c.cluster == int(k))


def _move(conn: sa.Connection, set_id: str, face_nos: Sequence[int], to: int) -> None:
    conn.execute(
        faces.update()
        .where(faces.c.set_id == set_id, faces.c.face_no.in_([int(n) for n in face_nos]))
        .values(cluster=int(to))
    )


def _state(c: SetCluster) -> dict[str, Any] | None:
    if c.label is None and not c.dismissed:
        return None
    return {"label": c.label, "dismissed": c.dismissed, "dismiss_reason": c.dismiss_reason}


def _set_state(conn: sa.Connection, set_id: str, k: int, state: dict[str, Any] | None) -> None:
    conn.execute(clusters.delete().where(_cluster_row(set_id, k)))
    if state is not None and (state.get("label") is not None or state.get("dismissed")):
        conn.execute(
            sa.insert(clusters).values(
                set_id=set_id,
                cluster=int(k),
                label=state.get("label"),
                dismissed=bool(state.get("dismissed")),
                dismiss_reason=state.get("dismiss_reason"),
            )
        )


def _revert(conn: sa.Connection, set_id: str, act: ClusterAction) -> None:
    d = act.details
    if act.action == "merge":
        _move(conn, set_id, d["moved"], int(d["from"]))
        _set_state(conn, set_id, int(d["from"]), d["from_state"])
    elif act.action == "split":
        _move(conn, set_id, d["moved"], int(d["from"]))
    elif act.action in ("name", "dismiss"):
        _set_state(conn, set_id, int(d["cluster"]), d["before"])
    else:  # pragma: no cover - every undoable action is handled above
        raise InvalidArgument(f"cannot undo {act.action!r}")


def _audited(details: dict[str, Any]) -> dict[str, Any]:
    """What the audit entry says of an action: the clusters and faces moved, never a label's
    text (held by the set until retention), only its sha256."""
    out = {k: v for k, v in details.items() if k not in ("label", "before", "from_state")}
    if "label" in details:
        out["label_sha256"] = hashlib.sha256(str(details["label"]).encode("utf-8")).hexdigest()
    return out
