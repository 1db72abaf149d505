"""Who may do what: roles, per-gallery grant levels, every operation, and ``authorize``.

One declarative table, :data:`POLICY`, says for each operation which roles may perform it and
which grant level on the gallery it needs. A call is allowed when the user is active, holds at
least one of the operation's roles, and — for a gallery operation that needs a grant — holds a
grant on that gallery at or above the level. Roles give no implicit access to galleries, not
even ``admin``: an administrator manages users, grants and galleries but searches or sees
images only through grants, like anyone else (least privilege, and every grant is audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType

from faceledger.errors import InvalidArgument, PermissionDenied

DEFAULT_ORG = "default"
"""The organisation of every user and gallery a workspace held before organisations existed,
and of every user and gallery created without one."""


class Role(StrEnum):
    ADMIN = "admin"
    """Users, roles, API keys, grants, galleries, retention."""
    ENROLLER = "enroller"
    """Adds and deletes subjects in galleries it has an ``enrol`` grant on."""
    SEARCHER = "searcher"
    """Runs 1:N searches and 1:1 verifications."""
    REVIEWER = "reviewer"
    """Confirms or rejects the leads of other people's searches."""
    AUDITOR = "auditor"
    """Reads, verifies, exports and reports on the audit log (of their organisation)."""
    OPERATOR = "operator"
    """The deployment's operator: creates organisations and their first administrators. Holds
    no other role (:data:`EXCLUSIVE_ROLES`), so sees no faces, no searches and no audit."""


EXCLUSIVE_ROLES = frozenset({Role.OPERATOR})
"""Roles an account may hold only alone."""


class GrantLevel(StrEnum):
    """What a user may do with one gallery; each level includes the ones before it."""

    SEARCH = "search"
    """Search it and see subject ids and scores of candidates, but no images."""
    VIEW_IMAGES = "view_images"
    """Also list its subjects and see their enrolled images (needed to review leads)."""
    ENROL = "enrol"
    """Also add and delete subjects."""

    @property
    def rank(self) -> int:
        return _LEVEL_ORDER.index(self)

    def includes(self, other: GrantLevel) -> bool:
        return self.rank >= other.rank


_LEVEL_ORDER = (GrantLevel.SEARCH, GrantLevel.VIEW_IMAGES, GrantLevel.ENROL)


class Scope(Enum):
    """Whether an operation names a gallery."""

    NONE = "none"
    """Never: passing a gallery is a caller error."""
    OPTIONAL = "optional"
    """Maybe (e.g. 1:1 between two uploads, or against an enrolled subject)."""
    REQUIRED = "required"


class Operation(StrEnum):
    """Every operation that is authorised: the one list, used by CLI, API and tests."""

    DETECT = "detect"
    VERIFY = "verify"
    SEARCH = "search"
    ENROL = "enrol"
    DELETE_SUBJECT = "delete_subject"
    LIST_SUBJECTS = "list_subjects"
    VIEW_IMAGES = "view_images"
    REVIEW = "review"
    READ_SEARCHES = "read_searches"
    GALLERY_LIST = "gallery_list"
    GALLERY_CREATE = "gallery_create"
    GALLERY_MANAGE = "gallery_manage"
    RETENTION_APPLY = "retention_apply"
    USER_MANAGE = "user_manage"
    GRANT_MANAGE = "grant_manage"
    AUDIT_READ = "audit_read"
    EVALUATE = "evaluate"
    ORG_MANAGE = "org_manage"
    """Create organisations (the deployment operator)."""
    AGREEMENT_MANAGE = "agreement_manage"
    """Create, change and revoke the sharing agreements of a gallery one's organisation owns;
    define the organisation's purpose categories."""
    AGREEMENT_READ = "agreement_read"
    """Read the agreements one's organisation is a party to."""
    LEAD_RELEASE = "lead_release"
    """Release a redacted lead of a gallery one's organisation owns to the searching one."""


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    scope: Scope = Scope.NONE
    level: GrantLevel | None = None
    """Grant needed on the gallery when one is named; None: the role alone suffices."""


_ALL_ROLES = frozenset(Role) - EXCLUSIVE_ROLES
"""Every role that works with galleries (not the operator)."""

POLICY: Mapping[Operation, Rule] = MappingProxyType(
    {
        Operation.DETECT: Rule(frozenset({Role.ENROLLER, Role.SEARCHER, Role.REVIEWER})),
        Operation.VERIFY: Rule(frozenset({Role.SEARCHER}), Scope.OPTIONAL, GrantLevel.SEARCH),
        Operation.SEARCH: Rule(frozenset({Role.SEARCHER}), Scope.REQUIRED, GrantLevel.SEARCH),
        Operation.ENROL: Rule(frozenset({Role.ENROLLER}), Scope.REQUIRED, GrantLevel.ENROL),
        Operation.DELETE_SUBJECT: Rule(
            frozenset({Role.ENROLLER}), Scope.REQUIRED, GrantLevel.ENROL
        ),
        Operation.LIST_SUBJECTS: Rule(
            frozenset({Role.ENROLLER, Role.SEARCHER, Role.REVIEWER}),
            Scope.REQUIRED,
            GrantLevel.VIEW_IMAGES,
        ),
        Operation.VIEW_IMAGES: Rule(
            frozenset({Role.ENROLLER, Role.SEARCHER, Role.REVIEWER}),
            Scope.REQUIRED,
            GrantLevel.VIEW_IMAGES,
        ),
        Operation.REVIEW: Rule(frozenset({Role.REVIEWER}), Scope.REQUIRED, GrantLevel.VIEW_IMAGES),
        Operation.READ_SEARCHES: Rule(
            frozenset({Role.SEARCHER, Role.REVIEWER, Role.AUDITOR}),
            Scope.OPTIONAL,
            GrantLevel.SEARCH,
        ),
        Operation.GALLERY_LIST: Rule(_ALL_ROLES),
        Operation.GALLERY_CREATE: Rule(frozenset({Role.ADMIN})),
        Operation.GALLERY_MANAGE: Rule(frozenset({Role.ADMIN}), Scope.REQUIRED),
        Operation.RETENTION_APPLY: Rule(frozenset({Role.ADMIN}), Scope.OPTIONAL),
        Operation.USER_MANAGE: Rule(frozenset({Role.ADMIN, Role.OPERATOR})),
        Operation.GRANT_MANAGE: Rule(frozenset({Role.ADMIN}), Scope.REQUIRED),
        Operation.AUDIT_READ: Rule(frozenset({Role.AUDITOR})),
        Operation.EVALUATE: Rule(frozenset({Role.ADMIN, Role.AUDITOR})),
        Operation.ORG_MANAGE: Rule(frozenset({Role.OPERATOR})),
        Operation.AGREEMENT_MANAGE: Rule(frozenset({Role.ADMIN}), Scope.OPTIONAL),
        Operation.AGREEMENT_READ: Rule(frozenset({Role.ADMIN, Role.AUDITOR})),
        Operation.LEAD_RELEASE: Rule(
            frozenset({Role.REVIEWER}), Scope.REQUIRED, GrantLevel.VIEW_IMAGES
        ),
    }
)
"""Role x operation x gallery: the whole access policy."""


@dataclass(frozen=True)
class User:
    """An authenticated principal: roles plus grants per gallery (loaded together)."""

    id: str
    roles: frozenset[Role]
    grants: Mapping[str, GrantLevel] = field(default_factory=lambda: MappingProxyType({}))
    active: bool = True
    display_name: str = ""
    local: bool = False
    """A local operator at the command line, backed by no credential (``local:<name>``):
    may not record review verdicts, and their searches need two reviewers."""
    org: str | None = DEFAULT_ORG
    """The organisation the user belongs to; None for the deployment itself (the CLI's local
    operator and the service's own tasks), which stands above every organisation."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))
        object.__setattr__(
            self,
            "grants",
            MappingProxyType({g: GrantLevel(v) for g, v in dict(self.grants).items()}),
        )

    def level_on(self, gallery: str) -> GrantLevel | None:
        return self.grants.get(gallery)


def authorize(user: User, operation: Operation, gallery: str | None = None) -> None:
    """Return if ``user`` may perform ``operation`` (on ``gallery``); else raise.

    Raises :class:`PermissionDenied` when refused, :class:`InvalidArgument` when the gallery
    argument does not fit the operation (named where none applies, or missing where required).
    """
    try:
        rule = POLICY[Operation(operation)]
    except ValueError:
        raise InvalidArgument(f"unknown operation {operation!r}") from None
    if rule.scope is Scope.NONE and gallery is not None:
        raise InvalidArgument(f"operation {operation} does not take a gallery")
    if rule.scope is Scope.REQUIRED and gallery is None:
        raise InvalidArgument(f"operation {operation} needs a gallery")
    if not user.active:
        raise PermissionDenied(f"user {user.id!r} is deactivated")
    if not user.roles & rule.roles:
        wanted = ", ".join(sorted(rule.roles))
        raise PermissionDenied(f"user {user.id!r} may not {operation}: needs role {wanted}")
    if gallery is not None and rule.level is not None:
        held = user.level_on(gallery)
        if held is None or not held.includes(rule.level):
            raise PermissionDenied(
                f"user {user.id!r} may not {operation} on gallery {gallery!r}: "
                f"needs a {rule.level} grant (has {held or 'none'})"
            )


def is_allowed(user: User, operation: Operation, gallery: str | None = None) -> bool:
    """:func:`authorize` as a yes/no (argument errors still raise)."""
    try:
        authorize(user, operation, gallery)
    except PermissionDenied:
        return False
    return True
