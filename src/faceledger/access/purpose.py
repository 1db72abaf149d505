"""Purpose binding: a 1:N search always states why (purpose) and for what (case reference);
a 1:1 verification does so when the deployment is configured to require it.
"""

from __future__ import annotations

from dataclasses import dataclass

from faceledger.access.policy import Operation
from faceledger.errors import PurposeRequired

MAX_PURPOSE_CHARS = 256


def require_purpose(purpose: str | None, case_ref: str | None) -> tuple[str, str]:
    """The purpose and case reference, stripped; :class:`PurposeRequired` if either is missing."""
    clean_purpose = _clean("purpose", purpose)
    clean_case = _clean("case reference", case_ref)
    return clean_purpose, clean_case


@dataclass(frozen=True)
class PurposePolicy:
    """Which operations need a purpose and case reference."""

    verify_requires_purpose: bool = False

    def check(
        self, operation: Operation, purpose: str | None, case_ref: str | None
    ) -> tuple[str | None, str | None]:
        """Validated (purpose, case_ref) for ``operation``; raises when they are required.

        Where not required, given values are still cleaned (and blank ones become None).
        """
        needed = operation == Operation.SEARCH or (
            operation == Operation.VERIFY and self.verify_requires_purpose
        )
        if needed:
            return require_purpose(purpose, case_ref)
        return _optional("purpose", purpose), _optional("case reference", case_ref)


def _clean(name: str, value: str | None) -> str:
    if value is None or not isinstance(value, str) or not value.strip():
        raise PurposeRequired(f"a {name} is required for this operation")
    text = value.strip()
    if len(text) > MAX_PURPOSE_CHARS or any(ord(ch) < 32 for ch in text):
        raise PurposeRequired(
            f"the {name} must be at most {MAX_PURPOSE_CHARS} printable characters"
        )
    return text


def _optional(name: str, value: str | None) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _clean(name, value)
