"""One rule for the names of people: account ids and the CLI's local operators.

The two-person rule and the "no review of one's own search" rule compare names, so two
spellings of one name must not pass as two people (``root`` / ``ROOT`` / ``root `` / ``ro\u200bot``
/ a right-to-left override / fullwidth ``ｒｏｏｔ``). A name is therefore NFKC-normalised,
stripped, refused if it holds an invisible or control character, case-folded, and must then
be plain ASCII (``a-z 0-9 . _ @ -``): look-alike letters of other scripts (Cyrillic ``о``)
are refused rather than mapped.

Someone at the command line of a local workspace without an account's key is a *local
operator*: their name is recorded as ``local:<name>``, which no account id can spell (``:``
is not allowed in one), so the audit log shows which actions no credential backed.
The service acting on its own, on no one's request (its retention timer), is recorded as
``service:<task>``, which neither an account nor a local operator can spell either.
"""

from __future__ import annotations

import re
import unicodedata

from faceledger.errors import InvalidArgument

LOCAL_PREFIX = "local:"
SERVICE_PREFIX = "service:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_INVISIBLE = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}


def canonical_name(raw: str) -> str:
    """The one spelling of a person's name, or :class:`InvalidArgument` saying why not."""
    if not isinstance(raw, str):
        raise InvalidArgument("a user name must be text")
    name = unicodedata.normalize("NFKC", raw).strip()
    hidden = [ch for ch in name if unicodedata.category(ch) in _INVISIBLE]
    if hidden:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(hidden))
        raise InvalidArgument(
            f"a user name may not hold invisible or control characters ({shown}: "
            "zero-width, direction overrides, ...)"
        )
    name = name.casefold()
    if not _NAME.match(name):
        raise InvalidArgument(
            "a user name is 1-64 characters of a-z, 0-9 and . _ @ - (not first), compared "
            f"without case; got {raw!r}"
        )
    return name


def local_name(raw: str) -> str:
    """The recorded id of a local operator called ``raw``: ``local:<canonical name>``."""
    return LOCAL_PREFIX + canonical_name(raw.removeprefix(LOCAL_PREFIX))


def person_key(user_id: str) -> str:
    """What two ids must share to name the same person (a local operator and the account of
    the same name are one person; so are ids that differ in case only)."""
    return unicodedata.normalize("NFKC", user_id.removeprefix(LOCAL_PREFIX)).strip().casefold()


def same_person(a: str, b: str) -> bool:
    return person_key(a) == person_key(b)


def own_names(user_id: str) -> tuple[str, str]:
    """The two ids under which ``user_id``'s own searches are recorded (account, local)."""
    name = user_id.removeprefix(LOCAL_PREFIX)
    return name, LOCAL_PREFIX + name
