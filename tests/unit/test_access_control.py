"""Users, hashed credentials and audited grants on a real SQLite file and PostgreSQL server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from faceledger.access import AccessControl, GrantLevel, Operation, Role, authorize
from faceledger.audit import AuditLog, AuditOp
from faceledger.errors import Conflict, InvalidArgument, NotFound, PermissionDenied


@pytest.fixture
def audit(db_engine: sa.Engine) -> AuditLog:
    return AuditLog(db_engine)


@pytest.fixture
def access(audit: AuditLog) -> AccessControl:
    # real argon2id, small costs so the tests stay fast
    return AccessControl(audit, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def ops(audit: AuditLog) -> list[str]:
    return [e.record.operation for e in audit.entries()]


def test_given_an_empty_store_when_bootstrapping_then_only_a_first_admin_is_accepted(
    access: AccessControl, audit: AuditLog
) -> None:
    with pytest.raises(InvalidArgument):
        access.create_user("first", [Role.SEARCHER], by=None)
    root = access.create_user("root", [Role.ADMIN], by=None, display_name="Root")
    assert root.roles == {Role.ADMIN} and root.active and root.display_name == "Root"
    with pytest.raises(PermissionDenied):
        access.create_user("second", [Role.ADMIN], by=None)
    assert [u.id for u in access.users()] == ["root"]
    (entry,) = audit.entries()
    assert entry.record.operation == AuditOp.USER_CREATE
    assert entry.record.details == {
        "user": "root",
        "roles": ["admin"],
        "bootstrap": True,
        "orgs": ["default"],
    }


def test_given_user_management_when_done_by_whom_then_admin_only_and_audited(
    access: AccessControl, audit: AuditLog
) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    sam = access.create_user("sam", [Role.SEARCHER], by=root)
    with pytest.raises(PermissionDenied):
        access.create_user("eve", [Role.ADMIN], by=sam)
    with pytest.raises(Conflict):
        access.create_user("sam", [Role.REVIEWER], by=root)
    with pytest.raises(InvalidArgument):
        access.create_user("bad id!", [Role.REVIEWER], by=root)
    with pytest.raises(InvalidArgument):
        access.create_user("ok", ["overlord"], by=root)
    sam = access.set_roles("sam", [Role.SEARCHER, Role.REVIEWER], by=root)
    assert sam.roles == {Role.SEARCHER, Role.REVIEWER}
    assert access.get_user("sam") == sam
    with pytest.raises(NotFound):
        access.get_user("nobody")
    with pytest.raises(PermissionDenied):
        access.set_roles("root", [Role.SEARCHER], by=sam)
    assert ops(audit) == ["user_create", "user_create", "user_roles"]
    assert audit.verify().ok


def test_given_an_api_key_when_used_then_only_the_exact_live_key_authenticates(
    access: AccessControl, db_engine: sa.Engine, audit: AuditLog
) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    access.create_user("sam", [Role.SEARCHER], by=root)
    key = access.issue_api_key("sam", by=root, label="laptop")
    assert key.token.startswith("flk_" + key.key_id + "_")
    assert access.authenticate(key.token).id == "sam"

    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_hash FROM access_api_keys")).scalar_one()
    secret = key.token.split("_", 2)[2]
    assert stored.startswith("$argon2id$") and secret not in stored

    last = key.token[-1]
    for bad in (
        key.token[:-1] + ("A" if last != "A" else "B"),
        key.token + "x",
        f"flk_{'0' * 12}_{secret}",
        secret,
        "",
        "flk_",
    ):
        with pytest.raises(PermissionDenied):
            access.authenticate(bad)

    with pytest.raises(PermissionDenied):
        access.issue_api_key("sam", by=access.get_user("sam"))
    access.revoke_api_key(key.key_id, by=access.get_user("sam"))  # owners may revoke their own
    with pytest.raises(PermissionDenied):
        access.authenticate(key.token)
    (info,) = access.api_keys("sam")
    assert info.label == "laptop" and info.revoked_at is not None

    second = access.issue_api_key("sam", by=root)
    access.deactivate("sam", by=root)
    with pytest.raises(PermissionDenied):
        access.authenticate(second.token)
    assert ops(audit)[-4:] == ["key_issue", "key_revoke", "key_issue", "user_deactivate"]


def test_given_passwords_when_set_and_checked_then_hashed_and_verified(
    access: AccessControl, db_engine: sa.Engine
) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    sam = access.create_user("sam", [Role.SEARCHER], by=root)
    access.create_user("rex", [Role.REVIEWER], by=root)
    access.set_password("sam", "correct horse battery", by=sam)
    with pytest.raises(InvalidArgument):
        access.set_password("sam", "short", by=sam)
    with pytest.raises(PermissionDenied):
        access.set_password("rex", "a long enough one", by=sam)
    assert access.check_password("sam", "correct horse battery").id == "sam"
    for user, password in (
        ("sam", "correct horse batterY"),
        ("rex", "anything at all"),
        ("x", "y"),
    ):
        with pytest.raises(PermissionDenied):
            access.check_password(user, password)
    with db_engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT password_hash FROM access_users WHERE id = 'sam'")
        ).scalar_one()
    assert stored.startswith("$argon2id$") and "horse" not in stored


def test_given_grants_when_given_changed_and_revoked_then_each_is_audited(
    access: AccessControl, audit: AuditLog
) -> None:
    root = access.create_user("root", [Role.ADMIN], by=None)
    access.create_user("sam", [Role.SEARCHER], by=root)
    sam = access.grant("sam", "north", GrantLevel.SEARCH, by=root)
    assert sam.grants == {"north": GrantLevel.SEARCH}
    sam = access.grant("sam", "north", "view_images", by=root)
    assert sam.level_on("north") is GrantLevel.VIEW_IMAGES
    assert access.grants_on("north") == {"sam": GrantLevel.VIEW_IMAGES}
    with pytest.raises(PermissionDenied):
        access.grant("sam", "south", GrantLevel.ENROL, by=sam)
    with pytest.raises(InvalidArgument):
        access.grant("sam", "north", "everything", by=root)
    sam = access.revoke("sam", "north", by=root)
    assert sam.grants == {}
    with pytest.raises(NotFound):
        access.revoke("sam", "north", by=root)
    with pytest.raises(PermissionDenied):
        authorize(sam, Operation.SEARCH, "north")

    grants = [e for e in audit.entries() if e.record.operation in ("grant", "revoke")]
    assert [(e.record.operation, e.record.actor, e.record.galleries) for e in grants] == [
        ("grant", "root", ("north",)),
        ("grant", "root", ("north",)),
        ("revoke", "root", ("north",)),
    ]
    assert grants[1].record.details == {
        "user": "sam",
        "gallery": "north",
        "level": "view_images",
        "previous": "search",
    }
    assert grants[2].record.details["previous"] == "view_images"
    assert audit.verify().ok
