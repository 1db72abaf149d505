"""Organisations, the galleries they own, their purpose categories and sharing agreements.

Every user belongs to one organisation and every gallery is owned by one. A workspace made
before organisations existed has none of these rows: its users and galleries belong to
:data:`~faceledger.access.policy.DEFAULT_ORG`, which therefore always exists (the upgrade
writes nothing, so two replicas opening an old workspace at once cannot race).

An owning organisation shares a gallery with another through an :class:`Agreement`: a level
(``search`` or ``view_images``), the purpose categories it allows (defined by the owner), a
legal basis, a start and an expiry, the most candidates returned, and whether leads stay
redacted until the owner releases them. A user's grant on another organisation's gallery is
*effective* only while such an agreement is live, and only up to its level
(:meth:`Organisations.effective_grants`): since users are loaded per request, revocation and
expiry take effect on the next request. Every change is audited in the transaction that
makes it; expiry is audited by :meth:`Organisations.audit_expired` (the service's retention
timer), but takes effect at the expiry time whether or not that has run.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from faceledger.access import schema
from faceledger.access.names import LOCAL_PREFIX, SERVICE_PREFIX, canonical_name
from faceledger.access.policy import DEFAULT_ORG, GrantLevel, Operation, Role, User, authorize
from faceledger.audit.log import AuditLog
from faceledger.audit.records import AuditOp, AuditRecord, format_timestamp, parse_timestamp
from faceledger.audit.sqlutil import create_tables, translate_errors
from faceledger.errors import Conflict, InvalidArgument, NotFound, PermissionDenied

MAX_CANDIDATES = 1000
MAX_TEXT = 256
SHARED_LEVELS = (GrantLevel.SEARCH, GrantLevel.VIEW_IMAGES)
"""What an agreement may give: never ``enrol`` (a partner does not edit the owner's gallery)."""


class AgreementState(StrEnum):
    PENDING = "pending"
    """Not started yet."""
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Organisation:
    id: str
    display_name: str
    created_at: datetime | None
    """None for the default organisation of an upgraded workspace (never written)."""


@dataclass(frozen=True)
class AgreementTerms:
    """What the owner of ``gallery`` grants ``grantee_org``."""

    gallery: str
    grantee_org: str
    purposes: tuple[str, ...]
    """Purpose categories of the owner that a search of the gallery may state."""
    legal_basis: str
    starts_at: datetime
    expires_at: datetime
    level: GrantLevel = GrantLevel.SEARCH
    max_candidates: int | None = None
    """The most leads one face may get from this gallery (None: the search's ``k``)."""
    redacted: bool = False
    """Leads name no subject (and show no image) until a reviewer of the owner releases them."""


@dataclass(frozen=True)
class Agreement:
    id: str
    owner_org: str
    terms: AgreementTerms
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    def state(self, now: datetime) -> AgreementState:
        if self.revoked_at is not None and self.revoked_at <= now:
            return AgreementState.REVOKED
        if now >= self.terms.expires_at:
            return AgreementState.EXPIRED
        if now < self.terms.starts_at:
            return AgreementState.PENDING
        return AgreementState.ACTIVE

    def allows_purpose(self, purpose: str) -> bool:
        wanted = purpose.strip().casefold()
        return any(p.casefold() == wanted for p in self.terms.purposes)

    def to_json(self) -> dict[str, Any]:
        t = self.terms
        return {
            "agreement_id": self.id,
            "owner_org": self.owner_org,
            "gallery": t.gallery,
            "grantee_org": t.grantee_org,
            "level": str(t.level),
            "purposes": list(t.purposes),
            "legal_basis": t.legal_basis,
            "starts_at": format_timestamp(t.starts_at),
            "expires_at": format_timestamp(t.expires_at),
            "max_candidates": t.max_candidates,
            "redacted": t.redacted,
        }


@dataclass(frozen=True)
class PurposeCategory:
    org: str
    name: str
    description: str


class Organisations:
    """Organisations and agreements; their tables live on the audit log's engine.

    Installs itself as the audit log's scoper: every entry is indexed under the
    organisations it concerns (:meth:`scopes_of`), which is what each organisation's
    auditors read.
    """

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._engine = audit.engine
        create_tables(self._engine, schema.metadata)
        audit.scoper = self.scopes_of
        audit.default_scope = DEFAULT_ORG

    # -- organisations -----------------------------------------------------------------------

    def create_org(self, org_id: str, display_name: str, *, by: User) -> Organisation:
        authorize(by, Operation.ORG_MANAGE)
        org_id = canonical_name(org_id)
        name = _text("display name", display_name or org_id)
        with self._audit.writing() as conn:
            if org_id == DEFAULT_ORG or self._org_row(conn, org_id) is not None:
                raise Conflict(f"organisation {org_id!r} already exists")
            now = self._audit.now()
            conn.execute(
                sa.insert(schema.orgs).values(
                    id=org_id,
                    display_name=name,
                    created_at=format_timestamp(now),
                    created_by=by.id,
                )
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.ORG_CREATE,
                    actor=by.id,
                    details={"org": org_id, "display_name": name, "orgs": [org_id]},
                ),
                connection=conn,
            )
        return Organisation(org_id, name, now)

    def orgs(self) -> list[Organisation]:
        with translate_errors("read organisations"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(schema.orgs).order_by(schema.orgs.c.id)).all()
            conn.rollback()
        found = [Organisation(r.id, r.display_name, parse_timestamp(r.created_at)) for r in rows]
        if not any(o.id == DEFAULT_ORG for o in found):
            found.insert(0, Organisation(DEFAULT_ORG, "Default organisation", None))
        return found

    def require_org(self, conn: sa.Connection, org_id: str) -> str:
        if org_id != DEFAULT_ORG and self._org_row(conn, org_id) is None:
            raise NotFound(f"no organisation {org_id!r}")
        return org_id

    @staticmethod
    def _org_row(conn: sa.Connection, org_id: str) -> sa.Row[tuple[object, ...]] | None:
        return conn.execute(sa.select(schema.orgs).where(schema.orgs.c.id == org_id)).first()

    # -- membership and ownership ------------------------------------------------------------

    @staticmethod
    def org_of(conn: sa.Connection, user_id: str) -> str:
        t = schema.memberships
        found = conn.execute(sa.select(t.c.org).where(t.c.user_id == user_id)).scalar()
        return DEFAULT_ORG if found is None else str(found)

    @staticmethod
    def set_member(conn: sa.Connection, user_id: str, org: str) -> None:
        t = schema.memberships
        conn.execute(sa.delete(t).where(t.c.user_id == user_id))
        conn.execute(sa.insert(t).values(user_id=user_id, org=org))

    @staticmethod
    def owner_in(conn: sa.Connection, gallery: str) -> str:
        t = schema.gallery_owners
        found = conn.execute(sa.select(t.c.org).where(t.c.gallery == gallery)).scalar()
        return DEFAULT_ORG if found is None else str(found)

    def owner_of(self, gallery: str) -> str:
        """The organisation owning ``gallery`` (the default one for a gallery made before)."""
        with translate_errors("read gallery owner"), self._engine.connect() as conn:
            found = self.owner_in(conn, gallery)
            conn.rollback()
        return found

    def owners(self, galleries: Iterable[str]) -> dict[str, str]:
        with translate_errors("read gallery owners"), self._engine.connect() as conn:
            found = {g: self.owner_in(conn, g) for g in galleries}
            conn.rollback()
        return found

    def set_owner(self, gallery: str, org: str) -> None:
        """Record that ``org`` owns the newly created ``gallery`` (replacing a stale row of a
        deleted gallery of the same name, whose agreements then no longer apply)."""
        t = schema.gallery_owners
        with translate_errors("record gallery owner"), self._engine.begin() as conn:
            self.require_org(conn, org)
            conn.execute(sa.delete(t).where(t.c.gallery == gallery))
            conn.execute(sa.insert(t).values(gallery=gallery, org=org))

    # -- purpose categories ------------------------------------------------------------------

    def define_purpose(self, org: str, name: str, description: str, *, by: User) -> PurposeCategory:
        """Add a purpose category ``org`` allows in its agreements (its administrators)."""
        authorize(by, Operation.AGREEMENT_MANAGE)
        _same_org(by, org, "define purposes of")
        clean = _text("purpose category", name)
        with self._audit.writing() as conn:
            self.require_org(conn, org)
            t = schema.purposes
            exists = conn.execute(
                sa.select(t.c.name).where(t.c.org == org, sa.func.lower(t.c.name) == clean.lower())
            ).first()
            if exists is not None:
                raise Conflict(f"organisation {org!r} already has purpose {clean!r}")
            conn.execute(
                sa.insert(t).values(
                    org=org,
                    name=clean,
                    description=description.strip(),
                    created_at=format_timestamp(self._audit.now()),
                    created_by=by.id,
                )
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.PURPOSE_DEFINE,
                    actor=by.id,
                    details={"org": org, "purpose": clean, "orgs": [org]},
                ),
                connection=conn,
            )
        return PurposeCategory(org, clean, description.strip())

    def purposes(self, org: str) -> list[PurposeCategory]:
        t = schema.purposes
        with translate_errors("read purposes"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.org == org).order_by(t.c.name)).all()
            conn.rollback()
        return [PurposeCategory(r.org, r.name, r.description) for r in rows]

    # -- agreements --------------------------------------------------------------------------

    def create_agreement(self, terms: AgreementTerms, *, by: User) -> Agreement:
        """The owner's administrator shares ``terms.gallery`` with ``terms.grantee_org``."""
        authorize(by, Operation.AGREEMENT_MANAGE, terms.gallery)
        with self._audit.writing() as conn:
            owner = self.owner_in(conn, terms.gallery)
            _same_org(by, owner, "share gallery of")
            terms = self._checked(conn, owner, terms)
            live = self._live_rows(conn, terms.grantee_org, terms.gallery, owner)
            now = self._audit.now()
            if any(a.state(now) in (AgreementState.ACTIVE, AgreementState.PENDING) for a in live):
                raise Conflict(
                    f"organisation {terms.grantee_org!r} already has an agreement on gallery "
                    f"{terms.gallery!r}: change or revoke it"
                )
            agreement = Agreement(secrets.token_hex(6), owner, terms, now, by.id, None, None)
            conn.execute(sa.insert(schema.agreements).values(**_row(agreement)))
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.AGREEMENT_CREATE,
                    actor=by.id,
                    galleries=(terms.gallery,),
                    details={**agreement.to_json(), "orgs": [owner, terms.grantee_org]},
                ),
                connection=conn,
            )
        return agreement

    def change_agreement(
        self, agreement_id: str, changes: Mapping[str, Any], *, by: User
    ) -> Agreement:
        """Change terms of an agreement (not its gallery or grantee); audited with before/after."""
        fixed = {"gallery", "grantee_org"} & set(changes)
        if fixed:
            raise InvalidArgument(f"an agreement's {', '.join(sorted(fixed))} cannot change")
        with self._audit.writing() as conn:
            before = self._get(conn, agreement_id)
            authorize(by, Operation.AGREEMENT_MANAGE, before.terms.gallery)
            _same_org(by, before.owner_org, "change agreements of")
            now = self._audit.now()
            if before.state(now) in (AgreementState.REVOKED, AgreementState.EXPIRED):
                raise Conflict(f"agreement {agreement_id} is {before.state(now)}: make a new one")
            try:
                terms = replace(before.terms, **dict(changes))
            except TypeError as exc:
                raise InvalidArgument(f"unknown agreement term: {exc}") from None
            terms = self._checked(conn, before.owner_org, terms)
            after = replace(before, terms=terms)
            values = _row(after)
            values["expiry_audited"] = False
            conn.execute(
                sa.update(schema.agreements)
                .where(schema.agreements.c.id == agreement_id)
                .values(**values)
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.AGREEMENT_CHANGE,
                    actor=by.id,
                    galleries=(terms.gallery,),
                    details={
                        "agreement_id": agreement_id,
                        "before": before.to_json(),
                        "after": after.to_json(),
                        "orgs": [before.owner_org, terms.grantee_org],
                    },
                ),
                connection=conn,
            )
        return after

    def revoke_agreement(self, agreement_id: str, reason: str, *, by: User) -> Agreement:
        """End an agreement now; the grantee's next request no longer has it."""
        reason = _text("reason", reason, limit=4000)
        with self._audit.writing() as conn:
            before = self._get(conn, agreement_id)
            authorize(by, Operation.AGREEMENT_MANAGE, before.terms.gallery)
            _same_org(by, before.owner_org, "revoke agreements of")
            if before.revoked_at is not None:
                raise Conflict(f"agreement {agreement_id} was already revoked")
            now = self._audit.now()
            conn.execute(
                sa.update(schema.agreements)
                .where(schema.agreements.c.id == agreement_id)
                .values(revoked_at=format_timestamp(now), revoked_by=by.id)
            )
            self._audit.append(
                AuditRecord(
                    operation=AuditOp.AGREEMENT_REVOKE,
                    actor=by.id,
                    galleries=(before.terms.gallery,),
                    details={
                        "agreement_id": agreement_id,
                        "reason": reason,
                        "orgs": [before.owner_org, before.terms.grantee_org],
                    },
                ),
                connection=conn,
            )
        return replace(before, revoked_at=now, revoked_by=by.id)

    def audit_expired(self, *, by: User) -> list[str]:
        """Write an ``agreement_expire`` entry for each agreement whose expiry has passed and
        is not on record yet (the agreement stopped applying at its expiry regardless)."""
        t = schema.agreements
        done: list[str] = []
        with self._audit.writing() as conn:
            now = self._audit.now()
            rows = conn.execute(
                sa.select(t).where(
                    t.c.expiry_audited.is_(False),
                    t.c.revoked_at.is_(None),
                    t.c.expires_at <= format_timestamp(now),
                )
            ).all()
            for r in rows:
                agreement = _agreement(r)
                conn.execute(sa.update(t).where(t.c.id == agreement.id).values(expiry_audited=True))
                self._audit.append(
                    AuditRecord(
                        operation=AuditOp.AGREEMENT_EXPIRE,
                        actor=by.id,
                        galleries=(agreement.terms.gallery,),
                        details={
                            "agreement_id": agreement.id,
                            "expired_at": format_timestamp(agreement.terms.expires_at),
                            "orgs": [agreement.owner_org, agreement.terms.grantee_org],
                        },
                    ),
                    connection=conn,
                )
                done.append(agreement.id)
        return done

    def agreement(self, agreement_id: str) -> Agreement:
        with translate_errors("read agreement"), self._engine.connect() as conn:
            found = self._get(conn, agreement_id)
            conn.rollback()
        return found

    def agreements(self, org: str | None = None) -> list[Agreement]:
        """Agreements ``org`` is a party to (owner or grantee); every one for None."""
        t = schema.agreements
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if org is not None:
            query = query.where((t.c.owner_org == org) | (t.c.grantee_org == org))
        with translate_errors("read agreements"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
            conn.rollback()
        return [_agreement(r) for r in rows]

    def live_agreement(self, org: str, gallery: str) -> Agreement | None:
        """The agreement under which ``org`` may use another organisation's ``gallery`` now."""
        with translate_errors("read agreements"), self._engine.connect() as conn:
            found = self.live_in(conn, org, gallery, self._audit.now())
            conn.rollback()
        return found

    def live_in(
        self, conn: sa.Connection, org: str, gallery: str, now: datetime
    ) -> Agreement | None:
        owner = self.owner_in(conn, gallery)
        if owner == org:
            return None
        for a in self._live_rows(conn, org, gallery, owner):
            if a.state(now) is AgreementState.ACTIVE:
                return a
        return None

    def effective_grants(
        self, conn: sa.Connection, org: str, grants: Mapping[str, GrantLevel], now: datetime
    ) -> dict[str, GrantLevel]:
        """``grants`` as they apply now: on galleries ``org`` owns, as given; on others', only
        under a live agreement and at most at its level."""
        out: dict[str, GrantLevel] = {}
        for gallery, level in grants.items():
            if self.owner_in(conn, gallery) == org:
                out[gallery] = level
                continue
            agreement = self.live_in(conn, org, gallery, now)
            if agreement is None:
                continue
            cap = agreement.terms.level
            out[gallery] = level if cap.includes(level) else cap
        return out

    def _live_rows(
        self, conn: sa.Connection, grantee: str, gallery: str, owner: str
    ) -> list[Agreement]:
        t = schema.agreements
        rows = conn.execute(
            sa.select(t).where(
                t.c.grantee_org == grantee,
                t.c.gallery == gallery,
                t.c.owner_org == owner,
                t.c.revoked_at.is_(None),
            )
        ).all()
        return [_agreement(r) for r in rows]

    def _get(self, conn: sa.Connection, agreement_id: str) -> Agreement:
        row = conn.execute(
            sa.select(schema.agreements).where(schema.agreements.c.id == agreement_id)
        ).first()
        if row is None:
            raise NotFound(f"no agreement {agreement_id!r}")
        return _agreement(row)

    def _checked(self, conn: sa.Connection, owner: str, terms: AgreementTerms) -> AgreementTerms:
        self.require_org(conn, terms.grantee_org)
        if terms.grantee_org == owner:
            raise InvalidArgument("an organisation needs no agreement with itself")
        try:
            level = GrantLevel(terms.level)
        except ValueError:
            raise InvalidArgument(f"unknown level {terms.level!r}") from None
        if level not in SHARED_LEVELS:
            raise InvalidArgument("an agreement gives search or view_images, never enrol")
        if not terms.purposes:
            raise InvalidArgument("an agreement allows at least one purpose category")
        known = {p.name.casefold(): p.name for p in self._purposes_in(conn, owner)}
        unknown = [p for p in terms.purposes if p.strip().casefold() not in known]
        if unknown:
            raise InvalidArgument(
                f"purpose categories not defined by {owner!r}: {', '.join(unknown)} "
                f"(defined: {', '.join(sorted(known.values())) or 'none'})"
            )
        purposes = tuple(dict.fromkeys(known[p.strip().casefold()] for p in terms.purposes))
        _text("legal basis", terms.legal_basis, limit=4000)
        for moment in (terms.starts_at, terms.expires_at):
            if moment.tzinfo is None:
                raise InvalidArgument("agreement dates must carry a time zone")
        if terms.expires_at <= terms.starts_at:
            raise InvalidArgument("an agreement expires after it starts")
        cap = terms.max_candidates
        if cap is not None and not 1 <= cap <= MAX_CANDIDATES:
            raise InvalidArgument(f"max_candidates must be between 1 and {MAX_CANDIDATES}")
        return replace(
            terms,
            level=level,
            purposes=purposes,
            legal_basis=terms.legal_basis.strip(),
            redacted=bool(terms.redacted),
        )

    @staticmethod
    def _purposes_in(conn: sa.Connection, org: str) -> list[PurposeCategory]:
        t = schema.purposes
        rows = conn.execute(sa.select(t).where(t.c.org == org)).all()
        return [PurposeCategory(r.org, r.name, r.description) for r in rows]

    # -- audit scopes ------------------------------------------------------------------------

    def scopes_of(self, conn: sa.Connection, record: AuditRecord) -> set[str]:
        """The organisations an audit entry concerns: the actor's, the owners of the galleries
        it names, and any named in ``details["orgs"]`` (both parties of an agreement, the
        organisation of a user created)."""
        found: set[str] = set()
        if not record.actor.startswith((LOCAL_PREFIX, SERVICE_PREFIX)):
            found.add(self.org_of(conn, record.actor))
        found.update(self.owner_in(conn, g) for g in record.galleries)
        named = record.details.get("orgs")
        if isinstance(named, Sequence) and not isinstance(named, str):
            found.update(str(o) for o in named)
        return found


def _same_org(by: User, org: str, what: str) -> None:
    if by.org is not None and by.org != org:
        raise PermissionDenied(f"user {by.id!r} of {by.org!r} may not {what} organisation {org!r}")


def has_role_in(by: User, role: Role, org: str) -> bool:
    """Whether ``by`` holds ``role`` in ``org`` (the deployment itself holds every role)."""
    return by.active and role in by.roles and (by.org is None or by.org == org)


def _text(name: str, value: str, *, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"a {name} is required")
    text = value.strip()
    if len(text) > limit or any(ord(ch) < 32 for ch in text):
        raise InvalidArgument(f"the {name} must be at most {limit} printable characters")
    return text


def _row(a: Agreement) -> dict[str, Any]:
    t = a.terms
    return {
        "id": a.id,
        "owner_org": a.owner_org,
        "gallery": t.gallery,
        "grantee_org": t.grantee_org,
        "level": str(t.level),
        "purposes": json.dumps(list(t.purposes)),
        "legal_basis": t.legal_basis,
        "starts_at": format_timestamp(t.starts_at),
        "expires_at": format_timestamp(t.expires_at),
        "max_candidates": t.max_candidates,
        "redacted": t.redacted,
        "created_at": format_timestamp(a.created_at),
        "created_by": a.created_by,
        "revoked_at": None if a.revoked_at is None else format_timestamp(a.revoked_at),
        "revoked_by": a.revoked_by,
        "expiry_audited": False,
    }


def _agreement(r: Any) -> Agreement:
    return Agreement(
        id=str(r.id),
        owner_org=str(r.owner_org),
        terms=AgreementTerms(
            gallery=str(r.gallery),
            grantee_org=str(r.grantee_org),
            purposes=tuple(json.loads(r.purposes)),
            legal_basis=str(r.legal_basis),
            starts_at=parse_timestamp(r.starts_at),
            expires_at=parse_timestamp(r.expires_at),
            level=GrantLevel(r.level),
            max_candidates=None if r.max_candidates is None else int(r.max_candidates),
            redacted=bool(r.redacted),
        ),
        created_at=parse_timestamp(r.created_at),
        created_by=str(r.created_by),
        revoked_at=None if r.revoked_at is None else parse_timestamp(r.revoked_at),
        revoked_by=None if r.revoked_by is None else str(r.revoked_by),
    )
