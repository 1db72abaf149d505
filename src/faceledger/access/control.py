"""Users, credentials and gallery grants, stored beside the audit log and audited with it.

Passwords and API-key secrets are stored only as argon2id hashes. An API key reads
``flk_<key id>_<secret>``: the key id finds the row, the secret is checked against its hash.
Every change (user, roles, password, key, grant, revocation) is authorised with
:func:`~faceledger.access.policy.authorize` and written in the same transaction as its audit
entry, so no change exists without its record.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from faceledger.access import schema
from faceledger.access.names import canonical_name
from faceledger.access.orgs import Organisations
from faceledger.access.policy import (
    DEFAULT_ORG,
    EXCLUSIVE_ROLES,
    GrantLevel,
    Operation,
    Role,
    User,
    authorize,
)
from faceledger.audit.log import AuditLog
from faceledger.audit.records import AuditOp, AuditRecord, format_timestamp, parse_timestamp
from faceledger.audit.sqlutil import create_tables, translate_errors
from faceledger.errors import Conflict, InvalidArgument, NotFound, PermissionDenied

KEY_PREFIX = "flk_"
MIN_PASSWORD_CHARS = 10
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_SECRET_BYTES = 32
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""What ``secrets.token_urlsafe(_SECRET_BYTES)`` gives: 43 URL-safe base64 characters."""
_TOKEN_CHARS = len(KEY_PREFIX) + 12 + 1 + 43
_BAD_CREDENTIALS = "invalid credentials"


@dataclass(frozen=True)
class IssuedKey:
    """A new API key; ``token`` is shown once and never stored."""

    key_id: str
    user_id: str
    token: str


@dataclass(frozen=True)
class ApiKeyInfo:
    key_id: str
    user_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class AccessControl:
    """Manage users, credentials and grants; its tables live on the audit log's engine."""

    def __init__(self, audit: AuditLog, *, hasher: PasswordHasher | None = None) -> None:
        self._audit = audit
        self._engine = audit.engine
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        create_tables(self._engine, schema.metadata)
        self.orgs = Organisations(audit)

    # -- users -------------------------------------------------------------------------------

    def create_user(
        self,
        user_id: str,
        roles: Iterable[Role | str],
        *,
        by: User | None,
        display_name: str = "",
        org: str | None = None,
    ) -> User:
        """Add a user to ``org`` (default: the creator's organisation). ``by=None`` is the
        bootstrap: allowed only for the first user, an admin (or the deployment's operator)."""
        user_id = canonical_name(user_id)
        role_set = _roles(roles)
        target_org = org or (by.org if by is not None and by.org else DEFAULT_ORG)
        if by is not None:
            authorize(by, Operation.USER_MANAGE)
            _check_manages(by, target_org, role_set)
        with self._audit.writing() as conn:
            self.orgs.require_org(conn, target_org)
            if by is None:
                if conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar():
                    raise PermissionDenied("only the first user may be created without an admin")
                if not role_set & {Role.ADMIN, Role.OPERATOR}:
                    raise InvalidArgument("the first user must have the admin or operator role")
            if self._same_name(conn, user_id) is not None:
                raise Conflict(f"user {user_id!r} already exists (names are compared without case)")
            now = format_timestamp(self._audit.now())
            conn.execute(
                sa.insert(schema.users).values(
                    id=user_id,
                    display_name=display_name,
                    roles=_roles_text(role_set),
                    active=True,
                    password_hash=None,
                    created_at=now,
                    created_by=user_id if by is None else by.id,
                )
            )
            self.orgs.set_member(conn, user_id, target_org)
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.USER_CREATE,
                    actor=user_id if by is None else by.id,
                    details={
                        "user": user_id,
                        "roles": sorted(role_set),
                        "bootstrap": by is None,
                        "orgs": [target_org],
                    },
                ),
                connection=conn,
            )
            return self._load(conn, user_id)

    def set_roles(self, user_id: str, roles: Iterable[Role | str], *, by: User) -> User:
        role_set = _roles(roles)
        authorize(by, Operation.USER_MANAGE)
        with self._audit.writing() as conn:
            before = self._require(conn, user_id)
            _check_manages(by, _org(before), before.roles | role_set)
            conn.execute(
                sa.update(schema.users)
                .where(schema.users.c.id == user_id)
                .values(roles=_roles_text(role_set))
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.USER_ROLES,
                    actor=by.id,
                    details={
                        "user": user_id,
                        "before": sorted(before.roles),
                        "after": sorted(role_set),
                    },
                ),
                connection=conn,
            )
            return self._load(conn, user_id)

    def deactivate(self, user_id: str, *, by: User) -> User:
        """Refuse every further request of ``user_id`` (its history stays). An administrator
        may not deactivate their own account (another administrator must)."""
        authorize(by, Operation.USER_MANAGE)
        if user_id == by.id:
            raise PermissionDenied("an administrator may not deactivate their own account")
        return self._set_active(user_id, False, by, AuditOp.USER_DEACTIVATE)

    def reactivate(self, user_id: str, *, by: User) -> User:
        """Let a deactivated user make requests again (their keys and grants as they were)."""
        authorize(by, Operation.USER_MANAGE)
        return self._set_active(user_id, True, by, AuditOp.USER_REACTIVATE)

    def _set_active(self, user_id: str, active: bool, by: User, op: AuditOp) -> User:
        with self._audit.writing() as conn:
            target = self._require(conn, user_id)
            _check_manages(by, _org(target), target.roles)
            conn.execute(
                sa.update(schema.users).where(schema.users.c.id == user_id).values(active=active)
            )
            self._audit.append(
                AuditRecord(operation=op, actor=by.id, details={"user": user_id}),
                connection=conn,
            )
            return self._load(conn, user_id)

    def get_user(self, user_id: str) -> User:
        with translate_errors("read user"), self._engine.connect() as conn:
            user = self._require(conn, user_id)
            conn.rollback()
        return user

    def managed_users(self, by: User) -> list[User]:
        """The accounts ``by`` manages (:func:`may_manage`)."""
        authorize(by, Operation.USER_MANAGE)
        return [u for u in self.users() if may_manage(by, _org(u), u.roles)]

    def keys_of(self, user_id: str, *, by: User) -> list[ApiKeyInfo]:
        """``user_id``'s API keys, for themselves or someone managing their account."""
        if by.id != user_id:
            authorize(by, Operation.USER_MANAGE)
            target = self.get_user(user_id)
            _check_manages(by, _org(target), target.roles)
        return self.api_keys(user_id)

    def users(self, org: str | None = None) -> list[User]:
        """Every user, or those of ``org``."""
        with translate_errors("read users"), self._engine.connect() as conn:
            ids = conn.execute(sa.select(schema.users.c.id).order_by(schema.users.c.id)).scalars()
            result = [self._load(conn, str(i)) for i in list(ids)]
            conn.rollback()
        return result if org is None else [u for u in result if u.org == org]

    # -- passwords ---------------------------------------------------------------------------

    def set_password(self, user_id: str, password: str, *, by: User) -> None:
        """Set a password; a user may set their own, an admin anyone's."""
        if by.id != user_id:
            authorize(by, Operation.USER_MANAGE)
        elif not by.active:
            raise PermissionDenied(f"user {by.id!r} is deactivated")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
            raise InvalidArgument(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
        digest = self._hasher.hash(password)
        with self._audit.writing() as conn:
            target = self._require(conn, user_id)
            if by.id != user_id:
                _check_manages(by, _org(target), target.roles)
            conn.execute(
                sa.update(schema.users)
                .where(schema.users.c.id == user_id)
                .values(password_hash=digest)
            )
            self._audit.append(
                AuditRecord(operation=AuditOp.PASSWORD_SET, actor=by.id, details={"user": user_id}),
                connection=conn,
            )

    def check_password(self, user_id: str, password: str) -> User:
        """The user if ``password`` is theirs and they are active; else PermissionDenied."""
        with translate_errors("sign in"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(schema.users.c.password_hash).where(schema.users.c.id == user_id)
            ).first()
            conn.rollback()
        stored = None if row is None else row.password_hash
        if not self._secret_matches(stored, password):
            raise PermissionDenied(_BAD_CREDENTIALS)
        user = self.get_user(user_id)
        if not user.active:
            raise PermissionDenied(_BAD_CREDENTIALS)
        return user

    # -- API keys ----------------------------------------------------------------------------

    def issue_api_key(self, user_id: str, *, by: User, label: str = "") -> IssuedKey:
        authorize(by, Operation.USER_MANAGE)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        digest = self._hasher.hash(secret)
        with self._audit.writing() as conn:
            target = self._require(conn, user_id)
            _check_manages(by, _org(target), target.roles)
            conn.execute(
                sa.insert(schema.api_keys).values(
                    key_id=key_id,
                    user_id=user_id,
                    secret_hash=digest,
                    label=label,
                    created_at=format_timestamp(self._audit.now()),
                    revoked_at=None,
                )
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.KEY_ISSUE,
                    actor=by.id,
                    details={"user": user_id, "key_id": key_id, "label": label},
                ),
                connection=conn,
            )
        return IssuedKey(key_id, user_id, f"{KEY_PREFIX}{key_id}_{secret}")

    def revoke_api_key(self, key_id: str, *, by: User) -> None:
        """Revoke a key; its owner or an admin may."""
        with self._audit.writing() as conn:
            row = conn.execute(
                sa.select(schema.api_keys).where(schema.api_keys.c.key_id == key_id)
            ).first()
            if row is None:
                raise NotFound(f"no API key {key_id!r}")
            if row.user_id != by.id:
                authorize(by, Operation.USER_MANAGE)
                target = self._require(conn, str(row.user_id))
                _check_manages(by, _org(target), target.roles)
            if row.revoked_at is not None:
                return
            conn.execute(
                sa.update(schema.api_keys)
                .where(schema.api_keys.c.key_id == key_id)
                .values(revoked_at=format_timestamp(self._audit.now()))
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.KEY_REVOKE,
                    actor=by.id,
                    details={"user": row.user_id, "key_id": key_id},
                ),
                connection=conn,
            )

    def api_keys(self, user_id: str) -> list[ApiKeyInfo]:
        t = schema.api_keys
        with translate_errors("read API keys"), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.user_id == user_id).order_by(t.c.created_at)
            ).all()
            conn.rollback()
        return [
            ApiKeyInfo(
                r.key_id,
                r.user_id,
                r.label,
                _time(r.created_at),
                None if r.revoked_at is None else _time(r.revoked_at),
            )
            for r in rows
        ]

    def authenticate(self, token: str) -> User:
        """The active user owning API key ``token``; PermissionDenied otherwise.

        A token not of the form of a key (see :func:`split_token`) is refused at once, without
        any argon2 work; a well-formed one with an unknown or revoked key id costs a dummy
        verification, so that it takes as long as a wrong secret for a live key."""
        parts = split_token(token)
        if parts is None:
            raise PermissionDenied(_BAD_CREDENTIALS)
        key_id, secret = parts
        stored: str | None = None
        user_id: str | None = None
        t = schema.api_keys
        with translate_errors("authenticate"), self._engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.user_id, t.c.secret_hash, t.c.revoked_at).where(t.c.key_id == key_id)
            ).first()
            conn.rollback()
        if row is not None and row.revoked_at is None:
            stored, user_id = row.secret_hash, row.user_id
        if not self._secret_matches(stored, secret) or user_id is None:
            raise PermissionDenied(_BAD_CREDENTIALS)
        user = self.get_user(user_id)
        if not user.active:
            raise PermissionDenied(_BAD_CREDENTIALS)
        return user

    def _secret_matches(self, stored: str | None, secret: str) -> bool:
        if stored is None:
            # spend the time of a real check, so unknown users and keys are not told apart
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            self._verify(self._dummy_hash, secret)
            return False
        return self._verify(stored, secret)

    def _verify(self, stored: str, secret: str) -> bool:
        try:
            return bool(self._hasher.verify(stored, secret))
        except (VerificationError, InvalidHashError):
            return False

    # -- grants ------------------------------------------------------------------------------

    def grant(self, user_id: str, gallery: str, level: GrantLevel | str, *, by: User) -> User:
        """Give ``user_id`` ``level`` on ``gallery`` (replacing any grant it had there)."""
        new_level = _level(level)
        _check_gallery(gallery)
        authorize(by, Operation.GRANT_MANAGE, gallery)
        t = schema.grants
        with self._audit.writing() as conn:
            target = self._require(conn, user_id)
            self._check_grants(conn, by, target, gallery, new_level)
            before = self._stored_grant(conn, user_id, gallery)
            where = (t.c.user_id == user_id) & (t.c.gallery == gallery)
            conn.execute(sa.delete(t).where(where))
            conn.execute(
                sa.insert(t).values(
                    user_id=user_id,
                    gallery=gallery,
                    level=str(new_level),
                    granted_at=format_timestamp(self._audit.now()),
                    granted_by=by.id,
                )
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.GRANT,
                    actor=by.id,
                    galleries=(gallery,),
                    details={
                        "user": user_id,
                        "gallery": gallery,
                        "level": str(new_level),
                        "previous": None if before is None else str(before),
                    },
                ),
                connection=conn,
            )
            return self._load(conn, user_id)

    def revoke(self, user_id: str, gallery: str, *, by: User) -> User:
        """Remove ``user_id``'s grant on ``gallery`` (NotFound if there is none)."""
        authorize(by, Operation.GRANT_MANAGE, gallery)
        t = schema.grants
        with self._audit.writing() as conn:
            target = self._require(conn, user_id)
            self._check_grants(conn, by, target, gallery, None)
            before = self._stored_grant(conn, user_id, gallery)
            if before is None:
                raise NotFound(f"user {user_id!r} has no grant on gallery {gallery!r}")
            conn.execute(sa.delete(t).where((t.c.user_id == user_id) & (t.c.gallery == gallery)))
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.REVOKE,
                    actor=by.id,
                    galleries=(gallery,),
                    details={"user": user_id, "gallery": gallery, "previous": str(before)},
                ),
                connection=conn,
            )
            return self._load(conn, user_id)

    def grants_on(self, gallery: str, *, org: str | None = None) -> dict[str, GrantLevel]:
        """Who holds which (stored) level on ``gallery``; only users of ``org`` when given."""
        t = schema.grants
        with translate_errors("read grants"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.user_id, t.c.level).where(t.c.gallery == gallery))
            result = {
                str(r.user_id): GrantLevel(r.level)
                for r in rows
                if org is None or self.orgs.org_of(conn, str(r.user_id)) == org
            }
            conn.rollback()
        return result

    def _check_grants(
        self, conn: sa.Connection, by: User, target: User, gallery: str, level: GrantLevel | None
    ) -> None:
        """An administrator grants the users of their own organisation, on galleries it owns
        or, within an agreement's level, on galleries shared with it. Operators hold none."""
        if Role.OPERATOR in target.roles:
            raise PermissionDenied(f"user {target.id!r} is an operator: operators hold no grants")
        if by.org is None:
            return
        if target.org != by.org:
            raise PermissionDenied(
                f"user {by.id!r} of {by.org!r} may not grant to user {target.id!r} of "
                f"{target.org!r}"
            )
        if self.orgs.owner_in(conn, gallery) == by.org:
            return
        agreement = self.orgs.live_in(conn, by.org, gallery, self._audit.now())
        if agreement is None:
            raise PermissionDenied(
                f"gallery {gallery!r} is neither owned by nor shared with {by.org!r}"
            )
        if level is not None and not agreement.terms.level.includes(level):
            raise PermissionDenied(
                f"agreement {agreement.id} shares gallery {gallery!r} at level "
                f"{agreement.terms.level}, not {level}"
            )

    @staticmethod
    def _stored_grant(conn: sa.Connection, user_id: str, gallery: str) -> GrantLevel | None:
        t = schema.grants
        found = conn.execute(
            sa.select(t.c.level).where((t.c.user_id == user_id) & (t.c.gallery == gallery))
        ).scalar()
        return None if found is None else GrantLevel(found)

    # -- rows --------------------------------------------------------------------------------

    @staticmethod
    def _same_name(conn: sa.Connection, name: str) -> str | None:
        """The id of an account whose name differs from ``name`` in case at most."""
        u = schema.users
        found = conn.execute(sa.select(u.c.id).where(sa.func.lower(u.c.id) == name)).first()
        return None if found is None else str(found.id)

    def _user_row(self, conn: sa.Connection, user_id: str) -> sa.Row[tuple[object, ...]] | None:
        return conn.execute(sa.select(schema.users).where(schema.users.c.id == user_id)).first()

    def _require(self, conn: sa.Connection, user_id: str) -> User:
        if self._user_row(conn, user_id) is None:
            raise NotFound(f"no user {user_id!r}")
        return self._load(conn, user_id)

    def _load(self, conn: sa.Connection, user_id: str) -> User:
        row = conn.execute(sa.select(schema.users).where(schema.users.c.id == user_id)).one()
        t = schema.grants
        levels = conn.execute(sa.select(t.c.gallery, t.c.level).where(t.c.user_id == user_id))
        org = self.orgs.org_of(conn, user_id)
        stored = {str(g.gallery): GrantLevel(g.level) for g in levels}
        return User(
            id=str(row.id),
            roles=frozenset(Role(r) for r in str(row.roles).split(",") if r),
            grants=self.orgs.effective_grants(conn, org, stored, self._audit.now()),
            active=bool(row.active),
            display_name=str(row.display_name),
            org=org,
        )


def _org(user: User) -> str:
    return user.org or DEFAULT_ORG


def may_manage(by: User, org: str, roles: frozenset[Role]) -> bool:
    """Whether ``by`` may manage an account of ``org`` holding ``roles``: the deployment
    itself anyone; an operator the administrators and operators of any organisation; an
    administrator the other accounts of their own organisation, never an operator."""
    if not by.active:
        return False
    if by.org is None:
        return True
    if Role.OPERATOR in by.roles and roles <= {Role.ADMIN, Role.OPERATOR}:
        return True
    return Role.ADMIN in by.roles and by.org == org and Role.OPERATOR not in roles


def _check_manages(by: User, org: str, roles: frozenset[Role]) -> None:
    if may_manage(by, org, roles):
        return
    raise PermissionDenied(
        f"user {by.id!r} of {by.org!r} may not manage an account of {org!r} with roles "
        f"{', '.join(sorted(roles)) or 'none'}"
    )


def _check_gallery(gallery: str) -> None:
    if not isinstance(gallery, str) or not gallery.strip() or len(gallery) > 256:
        raise InvalidArgument("a gallery name must be a non-empty string of at most 256 chars")


def _roles(roles: Iterable[Role | str]) -> frozenset[Role]:
    if isinstance(roles, str):
        raise InvalidArgument("roles must be a collection of role names, not one string")
    try:
        found = frozenset(Role(r) for r in roles)
    except ValueError as exc:
        raise InvalidArgument(f"unknown role ({exc}); roles: {', '.join(Role)}") from None
    alone = found & EXCLUSIVE_ROLES
    if alone and len(found) > 1:
        raise InvalidArgument(
            f"role {', '.join(sorted(alone))} is held alone (it sees no faces and no searches)"
        )
    return found


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(str(r) for r in roles))


def _level(level: GrantLevel | str) -> GrantLevel:
    try:
        return GrantLevel(level)
    except ValueError:
        raise InvalidArgument(
            f"unknown grant level {level!r}; levels: {', '.join(GrantLevel)}"
        ) from None


def split_token(token: object) -> tuple[str, str] | None:
    """``(key id, secret)`` of a token of the form of an API key, ``flk_<12 hex>_<43 URL-safe
    base64 characters>``; None for anything else. Costs no hashing and no database access."""
    if not isinstance(token, str) or len(token) != _TOKEN_CHARS or not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or not _KEY_ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        return None
    return key_id, secret


def _time(text: str) -> datetime:
    return parse_timestamp(text)
