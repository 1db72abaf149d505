"""ICAO 9303 check digits: the arithmetic, where each format prints them and what they cover,
and the OCR corrections they can confirm.

A check digit is the 7-3-1 weighted sum of the character values modulo 10. Because 7, 3 and 1
are all coprime to 10, it catches every single substitution *except* between characters whose
values agree modulo 10: ``<``/``0``/``A``/``K``/``U``, ``1``/``B``/``L``/``V``, ``6``/``G``/``Q``
and so on. It also cannot say *where* an error is: one digit carries about 3.3 bits.

That decides what can be corrected safely (:func:`correct_lines`):

* **Located** corrections (always on): a letter in a position that must be a digit (a date or
  a check digit) is certainly wrong, so the error's position is known; the letter is replaced by
  its unique digit partner in :data:`CONFUSIONS`, and kept only if the covering check digits
  then pass. With the position known, at most one digit passes a check, so a single misread
  character is either restored exactly or left as read (and the result is invalid). Where a
  filler may also be printed (TD1's document-number check digit, TD3's personal-number check
  digit) a letter is not read as ``0``: a filler and a ``0`` look the same to every check digit.
  The check digit of TD1's long document number is not corrected at all: where it sits is
  itself inferred from the characters read.
* **Mixed** corrections (opt-in, ``mixed=True``): in a document number or personal number any
  character may be a letter or a digit, so the position is not known. Trying the confusable
  readings and keeping the only one the check digit accepts is what OCR post-processors
  usually do, but a misread that is *not* in the table (``9`` read as ``7``) is then
  "corrected" into a different, check-passing, wrong number about a quarter of the time; the
  composite check digit does not help, since it weights the document number and the personal
  number exactly as their own check digits do. It is off by default for that reason.

Names, states, sex and document type are covered by no check digit and never corrected.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from faceledger.errors import InvalidArgument

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FILLER = "<"
MRZ_ALPHABET = frozenset(DIGITS + LETTERS + FILLER)
WEIGHTS = (7, 3, 1)

CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("O", "0"),
    ("D", "0"),
    ("Q", "0"),
    ("I", "1"),
    ("B", "8"),
    ("S", "5"),
    ("Z", "2"),
    ("G", "6"),
    ("T", "7"),
)
"""(letter, digit) pairs that OCR of the OCR-B font mixes up. Each letter has one digit partner,
which is what makes a letter in a digit-only position correctable."""

MAX_CANDIDATES = 256
"""Mixed corrections give up on a field with more confusable readings than this."""

Position = tuple[int, int]
"""(line index, character index), both from 0."""

Grid = Sequence[Sequence[str]]

_DIGIT_FOR_LETTER = dict(CONFUSIONS)


def char_value(char: str) -> int:
    """The ICAO value of one MRZ character: digits as such, A-Z = 10..35, the filler 0."""
    if len(char) == 1 and char in DIGITS:
        return int(char)
    if len(char) == 1 and char in LETTERS:
        return ord(char) - ord("A") + 10
    if char == FILLER:
        return 0
    raise InvalidArgument(f"{char!r} is not an MRZ character (A-Z, 0-9 or <)")


def check_digit(field: str) -> str:
    """ICAO 9303 part 3: weights 7, 3, 1 repeating, the sum modulo 10, as one digit."""
    total = sum(char_value(c) * WEIGHTS[i % 3] for i, c in enumerate(field))
    return str(total % 10)


def _alternatives(char: str) -> tuple[str, ...]:
    """Confusion partners of ``char`` that a check digit can tell apart from it (``G``/``6``
    have the same value modulo 10, so swapping them could never be confirmed)."""
    partners = [d for a, d in CONFUSIONS if a == char] + [a for a, d in CONFUSIONS if d == char]
    return tuple(p for p in partners if char_value(p) % 10 != char_value(char) % 10)


@dataclass(frozen=True)
class Check:
    """One check digit: the characters it covers and where it is printed."""

    name: str
    field: tuple[Position, ...]
    digit: Position
    digits_only: bool = False
    """Every covered position must be a digit (dates): a letter there locates an error."""
    filler_ok: bool = False
    """A filler in the digit position is right when the field is all filler (TD3 personal
    number, ICAO 9303 part 4)."""
    may_be_filler: bool = False
    """A filler may be printed in the digit position (TD1's long document number puts one
    there; TD3's empty personal number may): a misread there might have been a filler, which
    no check digit tells from a 0."""
    moves: bool = False
    """The digit's position was found from what was read (the end of TD1's long-number
    overflow), so a letter there does not locate an error."""

    def text(self, grid: Grid) -> str:
        return "".join(grid[line][col] for line, col in self.field)

    def expected(self, grid: Grid) -> str:
        return check_digit(self.text(grid))

    def read(self, grid: Grid) -> str:
        return grid[self.digit[0]][self.digit[1]]

    def passes(self, grid: Grid) -> bool:
        read = self.read(grid)
        if read == self.expected(grid):
            return True
        return self.filler_ok and read == FILLER and set(self.text(grid)) <= {FILLER}


@dataclass(frozen=True)
class _Change:
    position: Position
    old: str
    new: str
    check: str
    readings: int = 0
    """How many readings a mixed correction chose from (0: a located correction)."""

    def describe(self, composite: bool) -> str:
        line, col = self.position
        by = f"the {self.check} check digit"
        if composite and self.check != "composite":
            by += " and the composite check digit"
        why = (
            f"the only one of {self.readings} readings of the confusable characters that {by} "
            "accept"
            if self.readings
            else f"confirmed by {by}"
        )
        return f"line {line + 1} position {col + 1}: {self.old} -> {self.new} ({why})"


def _set(grid: list[list[str]], chars: dict[Position, str]) -> None:
    for (line, col), char in chars.items():
        grid[line][col] = char


def _located(grid: list[list[str]], check: Check) -> list[_Change]:
    """Letters where ``check`` needs digits, each swapped for its digit partner, all together,
    kept only if the check then passes."""
    partners = {p: _DIGIT_FOR_LETTER.get(grid[p[0]][p[1]]) for p in check.field}
    swaps = {p: d for p, d in partners.items() if d is not None and check.digits_only}
    digit = None if check.moves else _DIGIT_FOR_LETTER.get(check.read(grid))
    if digit is not None and not (digit == "0" and (check.may_be_filler or check.filler_ok)):
        swaps[check.digit] = digit
    return _try(grid, check, swaps, check.name)


def _try(
    grid: list[list[str]],
    judge: Check,
    swaps: dict[Position, str],
    name: str,
    readings: int = 0,
) -> list[_Change]:
    """Apply ``swaps`` if ``judge`` then passes; the changes made (none if it fails)."""
    if not swaps:
        return []
    old = {p: grid[p[0]][p[1]] for p in swaps}
    _set(grid, swaps)
    if judge.passes(grid):
        return [_Change(p, old[p], swaps[p], name, readings) for p in sorted(swaps)]
    _set(grid, old)
    return []


def _mixed(grid: list[list[str]], check: Check, composite: Check | None) -> list[_Change]:
    """The only reading of the confusable characters of a mixed field that its check digit
    accepts (and the composite, where there is one); nothing when none or several do."""
    if check.digits_only or check.passes(grid):
        return []
    options = [(p, _alternatives(grid[p[0]][p[1]])) for p in check.field]
    options = [(p, alts) for p, alts in options if alts]
    count = math.prod(len(alts) + 1 for _, alts in options) - 1
    if not 0 < count <= MAX_CANDIDATES:
        return []
    original = {p: grid[p[0]][p[1]] for p, _ in options}
    passing: list[dict[Position, str]] = []
    for combo in itertools.product(*[(original[p], *alts) for p, alts in options]):
        swaps = {p: c for (p, _), c in zip(options, combo, strict=True) if c != original[p]}
        if swaps:
            _set(grid, swaps)
            if check.passes(grid):
                passing.append(swaps)
            _set(grid, original)
    if len(passing) != 1:
        return []
    judge = composite if composite is not None else check
    return _try(grid, judge, passing[0], check.name, count + 1)


def correct_lines(
    lines: Sequence[str],
    checks: Sequence[Check],
    composite: Check | None,
    *,
    mixed: bool = False,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``lines`` with the corrections the check digits confirm, and a description of each.

    Everything a correction touches is also covered by the composite check digit where the
    format has one; if the composite fails on the corrected lines, every correction is undone,
    so that two errors in one field are not "confirmed" by one lucky digit.
    """
    grid = [list(line) for line in lines]
    changes: list[_Change] = []
    for check in checks:
        changes += _located(grid, check)
    if composite is not None:
        changes += _located(grid, composite)
    if mixed:
        for check in checks:
            changes += _mixed(grid, check, composite)
    if not changes or (composite is not None and not composite.passes(grid)):
        return tuple(lines), ()
    notes = tuple(c.describe(composite is not None) for c in changes)
    return tuple("".join(row) for row in grid), notes


# -- where the check digits are ------------------------------------------------------------


Span = tuple[int, int, int]
"""(line index, first character, one past the last)."""


@dataclass(frozen=True)
class Layout:
    """Where each field of one format is printed. :data:`LAYOUTS` keys them by the format's
    name (the values of ``mrz.MrzFormat``), so that this module needs nothing from ``mrz``."""

    names: Span
    number: Span
    nationality: Span
    birth: Span
    sex: Position
    expiry: Span
    optional: Span
    optional_2: Span | None = None
    personal_check: bool = False
    composite: tuple[Span, ...] = ()


def _two_line(width: int, optional_end: int, *, td: bool) -> Layout:
    """Line 2 of TD2, TD3 and both visas share their first 28 positions."""
    composite = ((1, 0, 10), (1, 13, 20), (1, 21, width - 1)) if td else ()
    return Layout(
        names=(0, 5, width),
        number=(1, 0, 9),
        nationality=(1, 10, 13),
        birth=(1, 13, 19),
        sex=(1, 20),
        expiry=(1, 21, 27),
        optional=(1, 28, optional_end),
        personal_check=td and width == 44,
        composite=composite,
    )


LAYOUTS: dict[str, Layout] = {
    "TD1": Layout(
        names=(2, 0, 30),
        number=(0, 5, 14),
        nationality=(1, 15, 18),
        birth=(1, 0, 6),
        sex=(1, 7),
        expiry=(1, 8, 14),
        optional=(0, 15, 30),
        optional_2=(1, 18, 29),
        composite=((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29)),
    ),
    "TD2": _two_line(36, 35, td=True),
    "TD3": _two_line(44, 42, td=True),
    "MRVA": _two_line(44, 44, td=False),
    "MRVB": _two_line(36, 36, td=False),
}
DOCUMENT_TYPE: Span = (0, 0, 2)
ISSUING_STATE: Span = (0, 2, 5)


def positions(span: Span) -> tuple[Position, ...]:
    line, start, end = span
    return tuple((line, col) for col in range(start, end))


def cut(lines: Sequence[str], span: Span) -> str:
    line, start, end = span
    return lines[line][start:end]


def checks_for(fmt: str, extension: int) -> tuple[tuple[Check, ...], Check | None]:
    """The field checks and the composite check of ``fmt``; ``extension`` is the number of
    characters a TD1 long document number puts into the optional data (0: not long)."""
    lay = LAYOUTS[fmt]
    line, _, end = lay.number
    if extension:  # ICAO 9303 part 5: overflow, then its check digit, in the optional data
        field = positions(lay.number) + positions((0, 15, 15 + extension))
        number = Check("document_number", field, (0, 15 + extension), moves=True)
    else:  # TD1: a long number's filler stands where a short one's check digit does
        filler = fmt == "TD1"
        number = Check("document_number", positions(lay.number), (line, end), may_be_filler=filler)
    checks = [number]
    for name, span in (("birth_date", lay.birth), ("expiry_date", lay.expiry)):
        checks.append(Check(name, positions(span), (span[0], span[2]), digits_only=True))
    if lay.personal_check:
        line, _, end = lay.optional
        checks.append(
            Check("personal_number", positions(lay.optional), (line, end), filler_ok=True)
        )
    composite = None
    if lay.composite:
        field = tuple(p for span in lay.composite for p in positions(span))
        composite = Check("composite", field, (lay.composite[-1][0], lay.composite[-1][2]))
    return tuple(checks), composite


def long_number_extension(fmt: str, lines: Sequence[str]) -> int:
    """How many characters of a TD1 long document number overflow into the optional data: a
    filler where the check digit belongs, a full first part, then overflow + check digit."""
    if fmt != "TD1" or lines[0][14] != FILLER or FILLER in lines[0][5:14]:
        return 0
    run = lines[0][15:30].split(FILLER)[0]
    return len(run) - 1 if len(run) >= 2 else 0


__all__ = [
    "CONFUSIONS",
    "DOCUMENT_TYPE",
    "FILLER",
    "ISSUING_STATE",
    "LAYOUTS",
    "MAX_CANDIDATES",
    "MRZ_ALPHABET",
    "Check",
    "Layout",
    "Position",
    "Span",
    "char_value",
    "check_digit",
    "checks_for",
    "correct_lines",
    "cut",
    "long_number_extension",
    "positions",
]
