"""Users, roles, per-gallery grants, hashed credentials, the one ``authorize`` and purposes."""

from faceledger.access.control import KEY_PREFIX, AccessControl, ApiKeyInfo, IssuedKey
from faceledger.access.policy import (
    POLICY,
    GrantLevel,
    Operation,
    Role,
    Rule,
    Scope,
    User,
    authorize,
    is_allowed,
)
from faceledger.access.purpose import PurposePolicy, require_purpose

__all__ = [
    "KEY_PREFIX",
    "POLICY",
    "AccessControl",
    "ApiKeyInfo",
    "GrantLevel",
    "IssuedKey",
    "Operation",
    "PurposePolicy",
    "Role",
    "Rule",
    "Scope",
    "User",
    "authorize",
    "is_allowed",
    "require_purpose",
]
