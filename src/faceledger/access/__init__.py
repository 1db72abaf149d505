"""Users, roles, organisations and their agreements, per-gallery grants, hashed credentials,
the one ``authorize`` and purposes."""

from faceledger.access.control import KEY_PREFIX, AccessControl, ApiKeyInfo, IssuedKey
from faceledger.access.orgs import (
    Agreement,
    AgreementState,
    AgreementTerms,
    Organisation,
    Organisations,
    PurposeCategory,
)
from faceledger.access.policy import (
    DEFAULT_ORG,
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
    "DEFAULT_ORG",
    "KEY_PREFIX",
    "POLICY",
    "AccessControl",
    "Agreement",
    "AgreementState",
    "AgreementTerms",
    "ApiKeyInfo",
    "GrantLevel",
    "IssuedKey",
    "Operation",
    "Organisation",
    "Organisations",
    "PurposeCategory",
    "PurposePolicy",
    "Role",
    "Rule",
    "Scope",
    "User",
    "authorize",
    "is_allowed",
    "require_purpose",
]
