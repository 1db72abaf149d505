"""The machine-readable zone of ICAO 9303 travel documents: compose, check, parse, correct.

Five layouts (:data:`LINE_SHAPES`): TD1 cards (3 x 30), TD2 cards (2 x 36), TD3 passports
(2 x 44) and the two visa sizes MRV-A (2 x 44) and MRV-B (2 x 36).

What the check digits protect, and what they do not: the document number, the birth date and
the expiry date each have a check digit in every format; TD3's personal number has its own;
TD1's two optional-data fields and TD2's optional data are covered by the composite check digit
only. **No check digit covers the names, the issuing state, the nationality, the sex or the
document type** (nor a visa's optional data): a misread there still gives ``valid=True``, and
since the document type's ``V`` tells visas from TD2/TD3, a misread there can even shift what
the rest of the line is read as. :data:`UNCHECKED_FIELDS` lists them per format, so that callers
can say that those values are as read, not verified.

Even a covered field can be wrong with every check passing when one character is replaced by
another of the same value modulo 10 (``0``/``<``/``A``/``K``/``U``, ``6``/``G``, ...): a check
digit cannot see that. In a date or a check-digit position such a letter or filler is still
caught, because :func:`parse` requires those to be digits (dates: real calendar dates); in a
document number or optional data it is not detectable. TD1's long-number rule (see
:func:`compose`) adds one such case: a short number's check digit ``0`` misread as ``<`` can
read as a long number.

OCR correction (see :mod:`faceledger.document.mrz_correct`) only fixes what the check digits
confirm, and is conservative: ``valid`` is never true unless every check passes on the final
lines, dates are calendar dates and the sex is ``M``, ``F`` or ``<``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from faceledger.document.mrz_correct import (
    DOCUMENT_TYPE,
    FILLER,
    ISSUING_STATE,
    LAYOUTS,
    MRZ_ALPHABET,
    Span,
    check_digit,
    checks_for,
    correct_lines,
    cut,
    long_number_extension,
)
from faceledger.errors import InvalidArgument, UnreadableMrz


class MrzFormat(StrEnum):
    TD1 = "TD1"
    TD2 = "TD2"
    TD3 = "TD3"
    MRVA = "MRVA"
    MRVB = "MRVB"


LINE_SHAPES: dict[MrzFormat, tuple[int, int]] = {
    MrzFormat.TD1: (3, 30),
    MrzFormat.TD2: (2, 36),
    MrzFormat.TD3: (2, 44),
    MrzFormat.MRVA: (2, 44),
    MrzFormat.MRVB: (2, 36),
}
"""(lines, characters per line) of each format."""

_NEVER_CHECKED = frozenset(
    {"document_type", "issuing_state", "nationality", "sex", "surname", "given_names"}
)
UNCHECKED_FIELDS: dict[MrzFormat, frozenset[str]] = {
    MrzFormat.TD1: _NEVER_CHECKED,
    MrzFormat.TD2: _NEVER_CHECKED,
    MrzFormat.TD3: _NEVER_CHECKED,
    MrzFormat.MRVA: _NEVER_CHECKED | {"personal_number"},
    MrzFormat.MRVB: _NEVER_CHECKED | {"personal_number"},
}
"""The :class:`MrzFields` names that no check digit covers in each format: values as read."""

_VISAS = frozenset({MrzFormat.MRVA, MrzFormat.MRVB})
_SEXES = frozenset({"M", "F", FILLER})


@dataclass(frozen=True)
class MrzFields:
    """The fields of an MRZ, as printed but without filler; names with spaces, not ``<``."""

    document_type: str
    issuing_state: str
    document_number: str
    nationality: str
    birth_date: str
    """YYMMDD as printed; ``<`` marks an unknown part (and makes the result invalid)."""
    sex: str
    """As printed: ``M``, ``F`` or ``<`` (unspecified); anything else makes it invalid."""
    expiry_date: str
    surname: str
    given_names: str
    personal_number: str = ""
    """TD3's personal number, TD1's first optional data, TD2's and the visas' optional data."""
    optional_data_2: str = ""
    """TD1's second optional data (line 2, positions 19-29); empty in the other formats."""


@dataclass(frozen=True)
class MrzCheck:
    name: str
    expected: str
    """The digit computed from the characters read."""
    read: str
    """The character printed in the check-digit position."""
    ok: bool


@dataclass(frozen=True)
class MrzResult:
    """A parsed MRZ. ``valid`` says every check digit passes, the dates are calendar dates and
    the sex is one ICAO allows. It vouches for nothing in :attr:`unchecked_fields`: no check
    digit covers the surname, given names, issuing state, nationality, sex or document type
    (nor a visa's optional data), so those are as read."""

    format: MrzFormat
    lines: tuple[str, ...]
    raw_lines: tuple[str, ...]
    fields: MrzFields
    checks: tuple[MrzCheck, ...]
    corrections: tuple[str, ...]
    valid: bool
    birth_date_iso: str | None
    expiry_date_iso: str | None
    expired: bool | None

    @property
    def unchecked_fields(self) -> frozenset[str]:
        """The fields no check digit covers in this format: as read, never verified."""
        return UNCHECKED_FIELDS[self.format]

    def as_json(self) -> dict[str, object]:
        fields: dict[str, object] = dict(asdict(self.fields))
        fields["birth_date_iso"] = self.birth_date_iso
        fields["expiry_date_iso"] = self.expiry_date_iso
        return {
            "format": self.format.value,
            "valid": self.valid,
            "lines": list(self.lines),
            "fields": fields,
            "checks": [asdict(c) for c in self.checks],
            "corrections": list(self.corrections),
            "expired": self.expired,
        }


# -- compose ---------------------------------------------------------------------------------


def _clean(value: str, name: str, *, spaces: bool = False) -> str:
    text = value.upper().replace(" ", FILLER) if spaces else value.upper()
    for char in text:
        if char not in MRZ_ALPHABET:
            raise InvalidArgument(f"{name}: {char!r} is not an MRZ character (A-Z, 0-9 or <)")
    return text


def _put(grid: list[list[str]], span: Span, text: str, name: str) -> None:
    line, start, end = span
    if len(text) > end - start:
        raise InvalidArgument(f"{name} {text!r} is longer than its {end - start} characters")
    grid[line][start : start + len(text)] = list(text)


def _put_exact(grid: list[list[str]], span: Span, text: str, name: str, digits: bool) -> None:
    allowed = set("0123456789" + FILLER) if digits else MRZ_ALPHABET
    if len(text) != span[2] - span[1] or not set(text) <= allowed:
        what = "digits or <" if digits else "MRZ characters"
        raise InvalidArgument(f"{name} {text!r} must be {span[2] - span[1]} {what}")
    _put(grid, span, text, name)


def _name_text(surname: str, given_names: str) -> str:
    """SURNAME<<GIVEN<NAMES; cut at the field's end by the caller (the simplest truncation
    ICAO 9303 part 3 allows)."""
    surname = _clean(surname.strip(), "surname", spaces=True)
    given = _clean(given_names.strip(), "given_names", spaces=True)
    return f"{surname}<<{given}" if given else surname


def _put_number(fmt: MrzFormat, grid: list[list[str]], number: str, optional: str) -> int:
    """Write the document number and the optional data; return the TD1 overflow length.

    Numbers over 9 characters follow ICAO's long-number rule on TD1 (first 9, a filler in the
    check-digit position, the rest + check digit + filler in the optional data); the other
    formats have no room and refuse them."""
    lay = LAYOUTS[fmt]
    if len(number) <= 9 or fmt is not MrzFormat.TD1:
        _put(grid, lay.number, number, "document_number")
        _put(grid, lay.optional, optional, "personal_number")
        return 0
    if FILLER in number:
        raise InvalidArgument(f"a long document number cannot hold a filler: {number!r}")
    overflow = number[9:] + FILLER + (FILLER + optional if optional else "")
    _put(grid, lay.number, number[:9], "document_number")
    _put(grid, lay.optional, overflow, "document_number overflow and personal_number")
    return len(number) - 9


def compose(fmt: MrzFormat, fields: MrzFields) -> tuple[str, ...]:
    """The printed lines of ``fields`` in ``fmt``, every check digit right.

    Raises :class:`InvalidArgument` for characters outside A-Z, 0-9 and ``<`` (after
    upper-casing; spaces allowed in names only), fields longer than their room (names are cut
    instead), dates that are not 6 digits or fillers, a visa whose document type does not start
    with ``V`` or a TD2/TD3 whose does (it would read back as the other format).
    """
    rows, width = LINE_SHAPES[fmt]
    lay = LAYOUTS[fmt]
    grid = [[FILLER] * width for _ in range(rows)]
    doc_type = _clean(fields.document_type, "document_type")
    if (fmt in _VISAS) != doc_type.startswith("V") and fmt is not MrzFormat.TD1:
        raise InvalidArgument(f"document type {doc_type!r} does not fit the {fmt} format")
    _put(grid, DOCUMENT_TYPE, doc_type, "document_type")
    _put(grid, ISSUING_STATE, _clean(fields.issuing_state, "issuing_state"), "issuing_state")
    names = _name_text(fields.surname, fields.given_names)
    _put(grid, lay.names, names[: lay.names[2] - lay.names[1]], "names")
    _put(grid, lay.nationality, _clean(fields.nationality, "nationality"), "nationality")
    _put_exact(grid, lay.birth, _clean(fields.birth_date, "birth_date"), "birth_date", True)
    _put_exact(grid, lay.expiry, _clean(fields.expiry_date, "expiry_date"), "expiry_date", True)
    sex_span = (lay.sex[0], lay.sex[1], lay.sex[1] + 1)
    _put_exact(grid, sex_span, _clean(fields.sex, "sex"), "sex", False)
    optional_2 = _clean(fields.optional_data_2, "optional_data_2")
    if lay.optional_2 is not None:
        _put(grid, lay.optional_2, optional_2, "optional_data_2")
    elif optional_2:
        raise InvalidArgument(f"{fmt} has no second optional data field")
    number = _clean(fields.document_number, "document_number")
    optional = _clean(fields.personal_number, "personal_number")
    checks, composite = checks_for(fmt, _put_number(fmt, grid, number, optional))
    for check in (*checks, *([composite] if composite else [])):
        empty = check.filler_ok and set(check.text(grid)) <= {FILLER}
        grid[check.digit[0]][check.digit[1]] = FILLER if empty else check.expected(grid)
    return tuple("".join(row) for row in grid)


# -- parse -----------------------------------------------------------------------------------


def _normalise(lines: Sequence[str]) -> tuple[str, ...]:
    """Whitespace removed, upper case, blank lines dropped; nothing guessed."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    cleaned = ("".join(line.split()).upper() for line in lines)
    return tuple(line for line in cleaned if line)


def _require_width(lines: Sequence[str], width: int, why: str) -> None:
    for i, line in enumerate(lines, start=1):
        if len(line) != width:
            raise UnreadableMrz(f"line {i} has {len(line)} characters, not {width} ({why})")


def _detect(lines: Sequence[str]) -> MrzFormat:
    if len(lines) == 3:
        _require_width(lines, 30, "a three-line MRZ is TD1")
        return MrzFormat.TD1
    if len(lines) != 2:
        raise UnreadableMrz(f"an MRZ has 2 or 3 lines, not {len(lines)}")
    widths = [len(line) for line in lines if len(line) in (36, 44)]
    if not widths:
        raise UnreadableMrz(
            f"line 1 has {len(lines[0])} characters; a two-line MRZ has 36 (TD2, MRV-B) "
            "or 44 (TD3, MRV-A)"
        )
    width = widths[0]
    kinds = "TD3 or MRV-A" if width == 44 else "TD2 or MRV-B"
    _require_width(lines, width, f"a two-line MRZ with a {width}-character line is {kinds}")
    visa = lines[0].startswith("V")
    if width == 44:
        return MrzFormat.MRVA if visa else MrzFormat.TD3
    return MrzFormat.MRVB if visa else MrzFormat.TD2


def detect_format(lines: Sequence[str]) -> MrzFormat:
    """The format from the line count and lengths; a leading ``V`` tells a visa from TD2/TD3.
    Raises :class:`UnreadableMrz` when the shape fits none."""
    return _detect(_normalise(lines))


def _split_names(text: str) -> tuple[str, str]:
    surname, _, given = text.partition("<<")
    return surname.rstrip(FILLER).replace(FILLER, " "), given.strip(FILLER).replace(FILLER, " ")


def _read_fields(fmt: MrzFormat, lines: Sequence[str], extension: int) -> MrzFields:
    lay = LAYOUTS[fmt]
    number = cut(lines, lay.number)
    optional = cut(lines, lay.optional)
    if extension:
        number += lines[0][15 : 15 + extension]
        optional = lines[0][15 + extension + 2 : 30]
    surname, given = _split_names(cut(lines, lay.names))
    return MrzFields(
        document_type=cut(lines, DOCUMENT_TYPE).rstrip(FILLER),
        issuing_state=cut(lines, ISSUING_STATE).rstrip(FILLER),
        document_number=number.rstrip(FILLER),
        nationality=cut(lines, lay.nationality).rstrip(FILLER),
        birth_date=cut(lines, lay.birth),
        sex=lines[lay.sex[0]][lay.sex[1]],
        expiry_date=cut(lines, lay.expiry),
        surname=surname,
        given_names=given,
        personal_number=optional.rstrip(FILLER),
        optional_data_2=cut(lines, lay.optional_2).rstrip(FILLER) if lay.optional_2 else "",
    )


def _date(yymmdd: str, century: int) -> datetime.date | None:
    if len(yymmdd) != 6 or not set(yymmdd) <= set("0123456789"):
        return None
    try:
        return datetime.date(century + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return None


def _shift_years(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def birth_date(yymmdd: str, today: datetime.date) -> datetime.date | None:
    """The latest century that does not put the birth after ``today`` (born today: age 0)."""
    base = today.year // 100 * 100
    for century in (base, base - 100):
        day = _date(yymmdd, century)
        if day is not None and day <= today:
            return day
    return None


def expiry_date(yymmdd: str, today: datetime.date) -> datetime.date | None:
    """The century that puts the expiry within [today - 50 years, today + 50 years): documents
    are not valid for 50 years, and one expired half a century ago is no longer shown."""
    low, high = _shift_years(today, -50), _shift_years(today, 50)
    base = today.year // 100 * 100
    for century in (base - 100, base, base + 100):
        day = _date(yymmdd, century)
        if day is not None and low <= day < high:
            return day
    return None


def _check_alphabet(lines: Sequence[str]) -> None:
    for i, line in enumerate(lines, start=1):
        for j, char in enumerate(line, start=1):
            if char not in MRZ_ALPHABET:
                raise UnreadableMrz(f"line {i} position {j}: {char!r} is not an MRZ character")


def parse(
    lines: Sequence[str],
    *,
    today: datetime.date | None = None,
    correct: bool = True,
    correct_mixed: bool = False,
) -> MrzResult:
    """Read an MRZ, apply the OCR corrections its check digits confirm, and judge it.

    ``lines`` may also be one string with line breaks. Whitespace is removed and letters are
    upper-cased; anything else out of shape or alphabet raises :class:`UnreadableMrz` (the
    reader, not this function, decides what a smudge was). ``correct=False`` reads the lines
    exactly as given; ``correct_mixed=True`` also corrects document and personal numbers from
    their check digit alone, which can produce a wrong number that passes (see
    :mod:`faceledger.document.mrz_correct`).
    """
    raw = tuple(lines.splitlines() if isinstance(lines, str) else lines)
    read = _normalise(raw)
    fmt = _detect(read)
    _check_alphabet(read)
    extension = long_number_extension(fmt, read)
    checks, composite = checks_for(fmt, extension)
    final: tuple[str, ...] = read
    corrections: tuple[str, ...] = ()
    if correct:
        final, corrections = correct_lines(read, checks, composite, mixed=correct_mixed)
    results = tuple(
        MrzCheck(c.name, c.expected(final), c.read(final), c.passes(final))
        for c in (*checks, *([composite] if composite else []))
    )
    fields = _read_fields(fmt, final, extension)
    today = today if today is not None else datetime.date.today()
    born, expires = birth_date(fields.birth_date, today), expiry_date(fields.expiry_date, today)
    ok = all(r.ok for r in results) and fields.sex in _SEXES
    return MrzResult(
        format=fmt,
        lines=final,
        raw_lines=raw,
        fields=fields,
        checks=results,
        corrections=corrections,
        valid=ok and born is not None and expires is not None,
        birth_date_iso=born.isoformat() if born else None,
        expiry_date_iso=expires.isoformat() if expires else None,
        expired=None if expires is None else expires < today,
    )


__all__ = [
    "LINE_SHAPES",
    "UNCHECKED_FIELDS",
    "MrzCheck",
    "MrzFields",
    "MrzFormat",
    "MrzResult",
    "birth_date",
    "check_digit",
    "compose",
    "detect_format",
    "expiry_date",
    "parse",
]
