"""Checks of values before they reach the database, each failing with :class:`InvalidArgument`.

The database constraints are the last line; these give the caller a message that names the
field instead of a constraint.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from faceledger.errors import InvalidArgument
from faceledger.store.records import ItemStatus, JsonObject, LegalBasis
from faceledger.types import Template, Vector

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CURSOR = re.compile(r"[0-9]{1,19}")
MAX_PAGE = 1000


def text(value: object, what: str, max_len: int) -> str:
    """A non-empty single-line string of at most ``max_len`` characters, stripped."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    s = value.strip()
    if not s:
        raise InvalidArgument(f"{what} must not be empty")
    if len(s) > max_len:
        raise InvalidArgument(f"{what} is longer than {max_len} characters")
    if any(ord(c) < 32 for c in s):
        raise InvalidArgument(f"{what} must not contain control characters")
    return s


def optional_text(value: object, what: str, max_len: int) -> str | None:
    return None if value is None else text(value, what, max_len)


def json_object(value: object, what: str) -> JsonObject:
    """A deep copy of ``value`` as a plain JSON object (no NaN, string keys)."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a JSON object (a mapping)")
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not JSON-serialisable: {exc}") from None
    if not isinstance(copied, dict):  # pragma: no cover - a dict always round-trips to a dict
        raise InvalidArgument(f"{what} must be a JSON object")
    return copied


def legal_basis(value: object) -> LegalBasis:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return LegalBasis(value)
    except ValueError:
        allowed = ", ".join(b.value for b in LegalBasis)
        raise InvalidArgument(f"legal basis must be one of {allowed}, not {value!r}") from None


def item_status(value: object) -> ItemStatus:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return ItemStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in ItemStatus)
        raise InvalidArgument(f"item status must be one of {allowed}, not {value!r}") from None


def sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise InvalidArgument(f"image sha256 must be 64 hex digits, not {value!r}")
    return value.lower()


MAX_RETENTION_DAYS = 36_500
"""A hundred years: longer periods are no period (and overflow date arithmetic)."""


MAX_RETENTION_HOURS = 87_600
"""Ten years (of 365 days): hours are for short periods (a temporary gallery that must be gone
by the end of the day); a longer period is better said in days, up to
:data:`MAX_RETENTION_DAYS`."""


def retention_days(value: object) -> int | None:
    return _period(value, "retention_days", "days", MAX_RETENTION_DAYS)


def retention_hours(value: object) -> int | None:
    return _period(value, "retention_hours", "hours", MAX_RETENTION_HOURS)


def retention_period(days: object, hours: object) -> tuple[int | None, int | None]:
    """A gallery's retention period: in days or in hours (or neither), never both, so that a
    reader of the gallery never has to ask which of two periods applies."""
    checked = retention_days(days), retention_hours(hours)
    if None not in checked:
        raise InvalidArgument("give a retention period in days or in hours, not both")
    return checked


def _period(value: object, what: str, unit: str, most: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        raise InvalidArgument(
            f"{what} must be a whole number of {unit} from 1 to {most:,}, or None"
        )
    return value


GALLERY_NAME = r"^[^\W_](?:[\w .-]{0,98}[\w.-])?$"
"""A gallery name: 1-100 letters, digits, spaces, '.', '_' and '-', starting with a letter or
digit and not ending with a space. Names go into URLs and file names: no '/', no control,
format (zero-width, right-to-left override) or other invisible characters."""
_GALLERY_NAME = re.compile(GALLERY_NAME)


def gallery_name(value: object) -> str:
    """A new gallery's name, stripped, under :data:`GALLERY_NAME` (CLI, API and library)."""
    name = text(value, "gallery name", 100)
    if not _GALLERY_NAME.fullmatch(name):
        raise InvalidArgument(
            f"gallery name {value!r} is not allowed: use 1-100 letters, digits, spaces, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return name


def quality_score(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument("quality score must be a finite number")
    return float(value)


def vector(template: Template) -> Vector:
    """The template's vector as contiguous float32, refusing empty or non-finite vectors."""
    v = np.ascontiguousarray(template.vector, dtype=np.float32)
    if v.ndim != 1 or v.shape[0] == 0:
        raise InvalidArgument("a template vector must be one-dimensional and non-empty")
    if not np.all(np.isfinite(v)):
        raise InvalidArgument("a template vector contains NaN or infinity")
    return v


def page_limit(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidArgument(f"page limit must be between 1 and {MAX_PAGE}")
    return value


def cursor(value: str | None) -> int:
    """The last id of the previous page (0 for the first page)."""
    if value is None:
        return 0
    if not isinstance(value, str) or not _CURSOR.fullmatch(value):
        raise InvalidArgument(f"malformed page cursor {value!r}")
    return int(value)


def ids(values: Any, what: str) -> list[int]:
    out: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise InvalidArgument(f"{what} must be whole numbers, not {v!r}")
        out.append(int(v))
    return out
