"""The role x operation x gallery matrix: every cell, allowed and refused, through real users
stored in a database, loaded again and checked by the one ``authorize``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from faceledger.access import (
    AccessControl,
    GrantLevel,
    Operation,
    PurposePolicy,
    Role,
    User,
    authorize,
    is_allowed,
    require_purpose,
)
from faceledger.audit import AuditLog
from faceledger.errors import InvalidArgument, PermissionDenied, PurposeRequired
from faceledger.store.database import open_database

# The access policy, written out as the specification the code must meet.
# x = the role may; gallery: whether the operation names one; level: grant it needs there.
SPEC = """
operation        admin enroller searcher reviewer auditor  operator gallery   level
detect           -     x        x        x        -        -        none      -
verify           -     -        x        -        -        -        optional  search
search           -     -        x        -        -        -        required  search
enrol            -     x        -        -        -        -        required  enrol
delete_subject   -     x        -        -        -        -        required  enrol
list_subjects    -     x        x        x        -        -        required  view_images
view_images      -     x        x        x        -        -        required  view_images
review           -     -        -        x        -        -        required  view_images
read_searches    -     -        x        x        x        -        optional  search
gallery_list     x     x        x        x        x        -        none      -
gallery_create   x     -        -        -        -        -        none      -
gallery_manage   x     -        -        -        -        -        required  -
retention_apply  x     -        -        -        -        -        optional  -
user_manage      x     -        -        -        -        x        none      -
grant_manage     x     -        -        -        -        -        required  -
audit_read       -     -        -        -        x        -        none      -
evaluate         x     -        -        -        x        -        none      -
org_manage       -     -        -        -        -        x        none      -
agreement_manage x     -        -        -        -        -        optional  -
agreement_read   x     -        -        -        x        -        none      -
lead_release     -     -        -        x        -        -        required  view_images
"""

ROLES = [Role.ADMIN, Role.ENROLLER, Role.SEARCHER, Role.REVIEWER, Role.AUDITOR, Role.OPERATOR]
LEVELS = [GrantLevel.SEARCH, GrantLevel.VIEW_IMAGES, GrantLevel.ENROL]
# one gallery per grant state; every user holds the level in the gallery's name
GALLERIES: dict[str, GrantLevel | None] = {
    "g-none": None,
    "g-search": GrantLevel.SEARCH,
    "g-view": GrantLevel.VIEW_IMAGES,
    "g-enrol": GrantLevel.ENROL,
}


def spec() -> dict[Operation, tuple[set[Role], str, GrantLevel | None]]:
    lines = [line.split() for line in SPEC.strip().splitlines()[1:]]
    result = {}
    for name, *marks, scope, level in lines:
        roles = {role for role, mark in zip(ROLES, marks, strict=True) if mark == "x"}
        result[Operation(name)] = (roles, scope, None if level == "-" else GrantLevel(level))
    return result


def fast_hasher() -> PasswordHasher:
    """Real argon2id with small costs, so tests stay fast (the default costs ~50 ms/hash)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def access(tmp_path: Path) -> Iterator[AccessControl]:
    engine = open_database(str(tmp_path / "faceledger.db"))
    yield AccessControl(AuditLog(engine), hasher=fast_hasher())
    engine.dispose()


def stored_users(access: AccessControl) -> dict[Role | None, User]:
    """One user per role and one with no role, each holding every grant level on the gallery
    named after it; loaded back from the store through an API key.
    """
    root = access.create_user("root", [Role.ADMIN], by=None)
    # the deployment itself (the CLI's local operator) creates the operator, who holds no grant
    deployment = User(id="local:owner", roles=frozenset(Role), org=None, local=True)
    users: dict[Role | None, User] = {}
    for role in [*ROLES, None]:
        uid = f"user-{role or 'norole'}"
        by = deployment if role is Role.OPERATOR else root
        access.create_user(uid, [role] if role else [], by=by)
        for gallery, level in GALLERIES.items():
            if level is not None and role is not Role.OPERATOR:
                access.grant(uid, gallery, level, by=root)
        key = access.issue_api_key(uid, by=by)
        users[role] = access.authenticate(key.token)
    return users


def expected(
    rule: tuple[set[Role], str, GrantLevel | None], role: Role | None, gallery: str | None
) -> str:
    roles, scope, level = rule
    if scope == "none" and gallery is not None:
        return "invalid"
    if scope == "required" and gallery is None:
        return "invalid"
    if role not in roles:
        return "deny"
    if gallery is None or level is None:
        return "allow"
    held = GALLERIES[gallery]
    return "allow" if held is not None and LEVELS.index(held) >= LEVELS.index(level) else "deny"


def outcome(user: User, operation: Operation, gallery: str | None) -> str:
    try:
        authorize(user, operation, gallery)
    except PermissionDenied:
        return "deny"
    except InvalidArgument:
        return "invalid"
    return "allow"


def test_given_the_spec_when_compared_then_it_lists_every_operation() -> None:
    assert set(spec()) == set(Operation)


def test_given_every_role_operation_and_gallery_when_authorized_then_matches_the_spec(
    access: AccessControl,
) -> None:
    users = stored_users(access)
    rules = spec()
    tally: Counter[tuple[Operation, str]] = Counter()
    cells = 0
    for operation, rule in rules.items():
        for role, user in users.items():
            for gallery in [None, *GALLERIES]:
                want = expected(rule, role, gallery)
                got = outcome(user, operation, gallery)
                assert got == want, f"{role} {operation} on {gallery}: {got}, spec says {want}"
                tally[(operation, got)] += 1
                cells += 1
    assert cells == len(Operation) * (len(ROLES) + 1) * (1 + len(GALLERIES))
    for operation in Operation:
        assert tally[(operation, "allow")] > 0, f"{operation}: no allowed cell"
        assert tally[(operation, "deny")] > 0, f"{operation}: no refused cell"


def test_given_several_roles_when_authorized_then_any_role_suffices(access: AccessControl) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    access.create_user("both", [Role.SEARCHER, Role.REVIEWER], by=root)
    user = access.grant("both", "g", GrantLevel.VIEW_IMAGES, by=root)
    for operation in (Operation.SEARCH, Operation.REVIEW, Operation.VIEW_IMAGES):
        authorize(user, operation, "g")
    assert not is_allowed(user, Operation.ENROL, "g")
    assert not is_allowed(user, Operation.SEARCH, "other")


def test_given_a_deactivated_user_when_authorized_then_everything_is_refused(
    access: AccessControl,
) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    access.create_user("sam", [Role.SEARCHER], by=root)
    access.grant("sam", "g", GrantLevel.ENROL, by=root)
    sam = access.deactivate("sam", by=root)
    assert not sam.active
    for operation in (Operation.SEARCH, Operation.DETECT, Operation.GALLERY_LIST):
        gallery = "g" if operation is Operation.SEARCH else None
        with pytest.raises(PermissionDenied):
            authorize(sam, operation, gallery)


def test_given_an_unknown_operation_when_authorized_then_invalid() -> None:
    with pytest.raises(InvalidArgument):
        authorize(User("u", frozenset({Role.ADMIN})), "launch_rockets")  # type: ignore[arg-type]


def test_given_a_cross_organisation_grant_when_used_then_search_yes_images_no(
    access: AccessControl,
) -> None:
    """Org A lets org B's searcher search A's gallery without seeing its images."""
    root = access.create_user("root", [Role.ADMIN], by=None)
    access.create_user("b-searcher", [Role.SEARCHER], by=root)
    b = access.grant("b-searcher", "org-a-gallery", GrantLevel.SEARCH, by=root)
    authorize(b, Operation.SEARCH, "org-a-gallery")
    for operation in (Operation.VIEW_IMAGES, Operation.LIST_SUBJECTS):
        with pytest.raises(PermissionDenied):
            authorize(b, operation, "org-a-gallery")
    b = access.revoke("b-searcher", "org-a-gallery", by=root)
    with pytest.raises(PermissionDenied):
        authorize(b, Operation.SEARCH, "org-a-gallery")


# -- purpose ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "case_ref"),
    [
        (None, "C-1"),
        ("fraud", None),
        ("  ", "C-1"),
        ("fraud", ""),
        ("a\x00b", "C"),
        ("x" * 300, "C"),
    ],
)
def test_given_a_missing_or_bad_purpose_when_required_then_refused(
    purpose: str | None, case_ref: str | None
) -> None:
    with pytest.raises(PurposeRequired):
        require_purpose(purpose, case_ref)


def test_given_a_purpose_policy_when_checked_then_search_always_and_verify_if_configured() -> None:
    assert require_purpose("  fraud ", " C-1 ") == ("fraud", "C-1")
    lax, strict = PurposePolicy(), PurposePolicy(verify_requires_purpose=True)
    with pytest.raises(PurposeRequired):
        lax.check(Operation.SEARCH, None, None)
    assert lax.check(Operation.VERIFY, None, " ") == (None, None)
    assert lax.check(Operation.VERIFY, "door", "D-2") == ("door", "D-2")
    with pytest.raises(PurposeRequired):
        strict.check(Operation.VERIFY, "door", None)
    assert strict.check(Operation.VERIFY, "door", "D-2") == ("door", "D-2")
    assert strict.check(Operation.ENROL, None, None) == (None, None)
