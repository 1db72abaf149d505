"""The ICAO 9303 machine-readable zone: the standard's specimens, compose/parse round trips,
check-digit-confirmed OCR corrections, and the property that matters downstream: a misread in
a position some check digit covers never gives a valid MRZ with a wrong field."""

from __future__ import annotations

import dataclasses
import datetime
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from faceledger.document.mrz import (
    LINE_SHAPES,
    UNCHECKED_FIELDS,
    MrzFields,
    MrzFormat,
    check_digit,
    compose,
    detect_format,
    parse,
)
from faceledger.errors import InvalidArgument, UnreadableMrz
from tests.specimens import SPECIMEN

TODAY = datetime.date(2024, 1, 15)
ALPHABET = string.ascii_uppercase + string.digits + "<"
ALNUM = string.ascii_uppercase + string.digits
PARTNERS = {"0": "ODQ", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "7": "T"}
"""Digit -> the letters OCR mistakes it for (the module's confusion table, typed again)."""

# ICAO 9303 specimens (part 4 TD3, part 5 TD1, part 6 TD2, part 7 MRV-A / MRV-B); every check
# digit verified by check_digit below.
TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")
MRVA = (
    "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
)
MRVB = ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX4009078F9612109<<<<<<<<")

ANNA = SPECIMEN
ANNA_CARD = dataclasses.replace(ANNA, document_type="I", document_number="D23145890")
ANNA_VISA = dataclasses.replace(
    ANNA,
    document_type="V",
    document_number="L8988901C",
    nationality="XXX",
    birth_date="400907",
    expiry_date="961210",
)
SPECIMENS = [
    (MrzFormat.TD3, TD3, ANNA),
    (MrzFormat.TD1, TD1, dataclasses.replace(ANNA_CARD, personal_number="")),
    (MrzFormat.TD2, TD2, dataclasses.replace(ANNA_CARD, personal_number="")),
    (MrzFormat.MRVA, MRVA, dataclasses.replace(ANNA_VISA, personal_number="6ZE184226B")),
    (MrzFormat.MRVB, MRVB, dataclasses.replace(ANNA_VISA, personal_number="")),
]


def swap(lines: tuple[str, ...], line: int, col: int, char: str) -> tuple[str, ...]:
    """``lines`` with one character replaced (line and col from 0)."""
    text = lines[line]
    return (*lines[:line], text[:col] + char + text[col + 1 :], *lines[line + 1 :])


# -- check digits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "digit"),
    [
        ("L898902C3", "6"),
        ("740812", "2"),
        ("120415", "9"),
        ("D23145890", "7"),
        ("L8988901C", "4"),
        ("400907", "8"),
        ("961210", "9"),
        ("ZE184226B<<<<<", "1"),
        ("<<<<<<<<<<<<<<", "0"),
        ("", "0"),
    ],
)
def test_check_digit_known_values(field: str, digit: str) -> None:
    assert check_digit(field) == digit


@pytest.mark.parametrize("field", ["abc", "74 0812", "É", "12-34", "«"])
def test_check_digit_refuses_other_characters(field: str) -> None:
    with pytest.raises(InvalidArgument):
        check_digit(field)


# -- specimens -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "lines", "fields"), SPECIMENS)
def test_specimens_parse_and_compose_back(
    fmt: MrzFormat, lines: tuple[str, ...], fields: MrzFields
) -> None:
    assert tuple(len(line) for line in lines) == (LINE_SHAPES[fmt][1],) * LINE_SHAPES[fmt][0]
    assert detect_format(lines) is fmt
    result = parse(lines, today=TODAY)
    assert result.format is fmt
    assert all(c.ok for c in result.checks), result.checks
    assert result.valid
    assert result.fields == fields
    assert result.lines == result.raw_lines == lines
    assert result.corrections == ()
    assert compose(fmt, fields) == lines
    names = [c.name for c in result.checks]
    expected = ["document_number", "birth_date", "expiry_date"]
    expected += ["personal_number"] if fmt is MrzFormat.TD3 else []
    expected += ["composite"] if fmt in (MrzFormat.TD1, MrzFormat.TD2, MrzFormat.TD3) else []
    assert names == expected


def test_specimen_dates_and_expiry() -> None:
    passport = parse(TD3, today=TODAY)
    assert (passport.birth_date_iso, passport.expiry_date_iso) == ("1974-08-12", "2012-04-15")
    assert passport.expired is True
    assert parse(TD3, today=datetime.date(2012, 4, 15)).expired is False
    assert parse(TD3, today=datetime.date(2012, 4, 16)).expired is True
    visa = parse(MRVA, today=TODAY)
    assert (visa.birth_date_iso, visa.expiry_date_iso) == ("1940-09-07", "1996-12-10")


def test_as_json() -> None:
    data = parse(TD3, today=TODAY).as_json()
    assert list(data) == ["format", "valid", "lines", "fields", "checks", "corrections", "expired"]
    assert data["format"] == "TD3"
    assert data["valid"] is True
    assert data["lines"] == list(TD3)
    fields = data["fields"]
    assert isinstance(fields, dict)
    assert fields["document_number"] == "L898902C3"
    assert fields["given_names"] == "ANNA MARIA"
    assert fields["birth_date_iso"] == "1974-08-12"
    assert fields["expiry_date_iso"] == "2012-04-15"
    assert set(fields) == {f.name for f in dataclasses.fields(MrzFields)} | {
        "birth_date_iso",
        "expiry_date_iso",
    }
    checks = data["checks"]
    assert isinstance(checks, list)
    assert checks[0] == {
        "name": "document_number",
        "expected": "6",
        "read": "6",
        "ok": True,
    }
    assert data["corrections"] == []
    assert data["expired"] is True


def test_unchecked_fields_are_said() -> None:
    assert "surname" in parse(TD3, today=TODAY).unchecked_fields
    assert "personal_number" not in parse(TD3, today=TODAY).unchecked_fields
    assert "personal_number" in parse(MRVA, today=TODAY).unchecked_fields
    for fmt in MrzFormat:
        assert {"document_number", "birth_date", "expiry_date"}.isdisjoint(UNCHECKED_FIELDS[fmt])


def test_td1_long_document_number() -> None:
    # ICAO 9303 part 5's example of a 12-character number: 9 characters, a filler in the check
    # digit's place, the other 3 and the check digit (9) in the optional data.
    fields = dataclasses.replace(ANNA_CARD, document_number="D23145890734", personal_number="")
    lines = compose(MrzFormat.TD1, fields)
    assert lines[0] == "I<UTOD23145890<7349<<<<<<<<<<<"
    result = parse(lines, today=TODAY)
    assert result.valid and result.fields == fields
    assert (result.checks[0].expected, result.checks[0].read) == ("9", "9")
    with_data = dataclasses.replace(fields, personal_number="AB12")
    lines = compose(MrzFormat.TD1, with_data)
    assert lines[0] == "I<UTOD23145890<7349<AB12<<<<<<"
    assert parse(lines, today=TODAY).fields == with_data
    broken = swap(lines, 0, 16, "4")  # the overflow misread: its check digit sees it
    assert not parse(broken, today=TODAY).valid


def test_empty_td3_personal_number_check_is_filler_or_zero() -> None:
    fields = dataclasses.replace(ANNA, personal_number="")
    lines = compose(MrzFormat.TD3, fields)
    assert lines[1][28:43] == "<" * 15
    assert parse(lines, today=TODAY).valid
    assert parse(swap(lines, 1, 42, "0"), today=TODAY).valid


# -- OCR corrections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "line", "col", "letter", "check"),
    [
        (TD3, 1, 15, "O", "birth_date"),  # 74[0]812
        (TD3, 1, 16, "B", "birth_date"),  # 740[8]12
        (TD3, 1, 18, "Z", "birth_date"),  # 74081[2]
        (TD3, 1, 21, "I", "expiry_date"),  # [1]20415
        (TD3, 1, 26, "S", "expiry_date"),  # 12041[5]
        (TD3, 1, 23, "D", "expiry_date"),  # 12[0]415
        (TD3, 1, 9, "G", "document_number"),  # check digit 6
        (TD3, 1, 43, "O", "composite"),
        (TD1, 1, 2, "O", "birth_date"),
        (TD1, 1, 3, "B", "birth_date"),
        (TD1, 0, 14, "T", "document_number"),  # check digit 7
        (MRVA, 1, 14, "O", "birth_date"),  # 4[0]0907
        (MRVB, 1, 19, "B", "birth_date"),  # check digit 8
    ],
)
def test_a_confused_digit_is_corrected_when_its_check_digit_confirms(
    lines: tuple[str, ...], line: int, col: int, letter: str, check: str
) -> None:
    misread = swap(lines, line, col, letter)
    result = parse(misread, today=TODAY)
    assert result.valid
    assert result.lines == lines
    assert result.raw_lines == misread
    digit = lines[line][col]
    assert len(result.corrections) == 1
    assert result.corrections[0].startswith(
        f"line {line + 1} position {col + 1}: {letter} -> {digit} (confirmed by the {check} "
    )
    assert parse(lines, today=TODAY).fields == result.fields
    unread = parse(misread, today=TODAY, correct=False)
    assert not unread.valid
    assert unread.lines == misread and unread.corrections == ()


def test_no_letter_is_read_as_0_where_a_filler_may_stand() -> None:
    """TD1's document-number check digit is a filler on a long-number card, and a filler and a 0
    have the same value: 'O' there is not corrected. Nor is the long number's own check digit,
    whose position comes from the characters read (these two cases, with the filler after it
    misread, once came back valid with a wrong number)."""
    short = compose(MrzFormat.TD1, dataclasses.replace(ANNA_CARD, document_number="000000000"))
    assert short[0][14] == "0"
    assert not parse(swap(short, 0, 14, "O"), today=TODAY).valid
    fields = dataclasses.replace(ANNA_CARD, document_number="0" * 14, personal_number="")
    long = compose(MrzFormat.TD1, fields)
    assert long[0][14:22] == "<000000<"
    result = parse(swap(long, 0, 21, "O"), today=TODAY)
    assert not result.valid and result.corrections == ()
    found = MrzFields("I", "A", "000017CEHRW", "A", "000101", "M", "000101", "A", "", "Q")
    lines = compose(MrzFormat.TD1, found)
    assert lines[0] == "I<A<<000017CEH<RW8<Q<<<<<<<<<<"
    result = parse(swap(lines, 0, 18, "W"), today=TODAY)
    assert not result.valid and result.corrections == ()


def test_correction_message() -> None:
    result = parse(swap(TD3, 1, 15, "O"), today=TODAY)
    assert result.corrections == (
        "line 2 position 16: O -> 0 (confirmed by the birth_date check digit and the composite "
        "check digit)",
    )
    visa = parse(swap(MRVA, 1, 14, "O"), today=TODAY)
    assert visa.corrections == (
        "line 2 position 15: O -> 0 (confirmed by the birth_date check digit)",
    )


def test_two_letters_in_one_date_are_corrected_together() -> None:
    result = parse(swap(swap(TD3, 1, 15, "O"), 1, 17, "I"), today=TODAY)
    assert result.valid and result.lines == TD3 and len(result.corrections) == 2


@pytest.mark.parametrize(
    ("line", "col", "char"),
    [
        (1, 14, "S"),  # 7[4]0812 read as S: its partner 5 is not what the check digit needs
        (1, 23, "6"),  # 12[0]415 -> 126415: a wrong digit, not a confusion
        (1, 22, "7"),  # 1[2]0415 -> 170415
        (1, 15, "X"),  # a letter with no digit partner
        (1, 15, "<"),
    ],
)
def test_what_no_check_digit_confirms_stays_as_read_and_invalid(
    line: int, col: int, char: str
) -> None:
    misread = swap(TD3, line, col, char)
    result = parse(misread, today=TODAY)
    assert not result.valid
    assert result.corrections == ()
    assert result.lines == misread
    assert char in result.fields.birth_date + result.fields.expiry_date


def test_a_date_correction_is_undone_when_the_composite_fails() -> None:
    """The birth date's own digit confirms O -> 0, but a second error (in the document number)
    makes the composite fail: nothing is corrected."""
    misread = swap(swap(TD3, 1, 15, "O"), 1, 2, "3")
    result = parse(misread, today=TODAY)
    assert not result.valid
    assert result.corrections == () and result.lines == misread
    assert result.fields.birth_date == "74O812"


def test_document_numbers_are_not_corrected_by_default() -> None:
    fields = dataclasses.replace(ANNA, document_number="C4HP0NJ")
    lines = compose(MrzFormat.TD3, fields)
    misread = swap(lines, 1, 4, "O")
    default = parse(misread, today=TODAY)
    assert not default.valid and default.corrections == ()
    assert default.fields.document_number == "C4HPONJ"
    mixed = parse(misread, today=TODAY, correct_mixed=True)
    assert mixed.valid and mixed.fields == fields
    assert mixed.corrections == (
        "line 2 position 5: O -> 0 (the only one of 2 readings of the confusable characters "
        "that the document_number check digit and the composite check digit accept)",
    )
    assert not parse(misread, today=TODAY, correct=False, correct_mixed=True).valid


def test_mixed_correction_refuses_an_ambiguous_reading() -> None:
    # L898902C3 has five confusable characters: with 0 misread as O, several readings pass.
    misread = swap(TD3, 1, 5, "O")
    result = parse(misread, today=TODAY, correct_mixed=True)
    assert not result.valid and result.corrections == ()
    assert result.fields.document_number == "L8989O2C3"


def test_mixed_correction_can_confirm_a_wrong_number() -> None:
    """Why mixed correction is opt-in: 0 misread as L (not a confusion) leaves the check digit
    failing, and exactly one confusable reading (8 -> B elsewhere) happens to pass it and the
    composite. The default refuses; mixed correction returns a valid, wrong number."""
    misread = swap(TD3, 1, 5, "L")
    assert not parse(misread, today=TODAY).valid
    mixed = parse(misread, today=TODAY, correct_mixed=True)
    assert mixed.valid
    assert mixed.fields.document_number == "LB989L2C3" != ANNA.document_number


# -- dates -----------------------------------------------------------------------------------


def _with_dates(birth: str, expiry: str = "300101") -> MrzFields:
    return dataclasses.replace(ANNA, birth_date=birth, expiry_date=expiry)


@pytest.mark.parametrize(
    ("birth", "iso"),
    [
        ("240115", "2024-01-15"),  # born today: 0 years old, this century
        ("240116", "1924-01-16"),  # tomorrow would be in the future: last century
        ("991231", "1999-12-31"),
        ("000229", "2000-02-29"),
        ("741332", None),
        ("740230", None),
        ("74<<<<", None),
    ],
)
def test_birth_century(birth: str, iso: str | None) -> None:
    result = parse(compose(MrzFormat.TD3, _with_dates(birth)), today=TODAY)
    assert result.birth_date_iso == iso
    assert all(c.ok for c in result.checks)
    assert result.valid is (iso is not None)


@pytest.mark.parametrize(
    ("expiry", "iso", "expired"),
    [
        ("740115", "1974-01-15", True),  # today - 50 years: the window's first day
        ("740114", "2074-01-14", False),  # one day earlier would be outside: next century
        ("240114", "2024-01-14", True),
        ("240115", "2024-01-15", False),  # valid through its expiry day
        ("991231", "1999-12-31", True),
        ("350601", "2035-06-01", False),
        ("991331", None, None),
    ],
)
def test_expiry_century_and_expired(expiry: str, iso: str | None, expired: bool | None) -> None:
    result = parse(compose(MrzFormat.TD3, _with_dates("740812", expiry)), today=TODAY)
    assert result.expiry_date_iso == iso
    assert result.expired is expired
    assert result.valid is (iso is not None)


def test_a_sex_icao_does_not_allow_is_invalid() -> None:
    for sex, valid in (("M", True), ("F", True), ("<", True), ("X", False), ("Q", False)):
        lines = compose(MrzFormat.TD3, dataclasses.replace(ANNA, sex=sex))
        assert parse(lines, today=TODAY).valid is valid, sex


# -- shapes and input ------------------------------------------------------------------------


def test_lines_are_normalised() -> None:
    lines = ["  " + TD3[0][:5].lower() + " " + TD3[0][5:].lower(), "\t" + TD3[1] + " ", ""]
    result = parse(lines, today=TODAY)
    assert result.valid and result.lines == TD3 and result.raw_lines == tuple(lines)
    assert parse("\n".join(TD3) + "\n", today=TODAY).lines == TD3


def test_a_visa_is_told_from_a_passport_by_its_v() -> None:
    assert detect_format(TD3) is MrzFormat.TD3
    assert detect_format(("V" + TD3[0][1:], TD3[1])) is MrzFormat.MRVA
    assert detect_format(("V" + TD2[0][1:], TD2[1])) is MrzFormat.MRVB


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((TD3[0],), "2 or 3 lines, not 1"),
        ((*TD1, TD1[2]), "2 or 3 lines, not 4"),
        ((TD3[0], TD3[1][:-1]), "line 2 has 43 characters"),
        ((TD3[0][:40], TD3[1][:40]), "line 1 has 40 characters"),
        ((TD2[0], TD3[1]), "line 2 has 44 characters"),
        ((TD1[0], TD1[1] + "<", TD1[2]), "line 2 has 31 characters"),
        ((TD3[0], TD3[1][:-1] + "«"), "line 2 position 44"),
        ((), "not 0"),
    ],
)
def test_wrong_shapes_are_unreadable(lines: tuple[str, ...], message: str) -> None:
    with pytest.raises(UnreadableMrz, match=message):
        parse(lines, today=TODAY)


@pytest.mark.parametrize(
    ("fmt", "change"),
    [
        (MrzFormat.TD3, {"surname": "MÜLLER"}),
        (MrzFormat.TD3, {"given_names": "ANNE-MARIE"}),
        (MrzFormat.TD3, {"document_number": "L898 02C3"}),
        (MrzFormat.TD3, {"document_number": "L898902C31"}),  # no room for a long number
        (MrzFormat.TD2, {"document_type": "I", "document_number": "D231458901"}),
        (MrzFormat.TD1, {"document_type": "I", "document_number": "D" * 30}),
        (MrzFormat.TD3, {"birth_date": "7408"}),
        (MrzFormat.TD3, {"birth_date": "74O812"}),
        (MrzFormat.TD3, {"sex": "FF"}),
        (MrzFormat.TD3, {"issuing_state": "UTOP"}),
        (MrzFormat.TD3, {"personal_number": "Z" * 15}),
        (MrzFormat.TD3, {"optional_data_2": "X"}),
        (MrzFormat.TD3, {"document_type": "V"}),
        (MrzFormat.MRVA, {"document_type": "P"}),
    ],
)
def test_compose_refuses_what_does_not_fit(fmt: MrzFormat, change: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        compose(fmt, dataclasses.replace(ANNA, **change))


def test_compose_upper_cases_and_cuts_long_names() -> None:
    fields = dataclasses.replace(ANNA, surname="van der Berg Huisman", given_names="x" * 40)
    line = compose(MrzFormat.TD3, fields)[0]
    assert line == "P<UTOVAN<DER<BERG<HUISMAN<<" + "X" * 17
    assert parse((line, TD3[1]), today=TODAY).fields.surname == "VAN DER BERG HUISMAN"


# -- properties ------------------------------------------------------------------------------

DOCUMENT_TYPES = {
    MrzFormat.TD1: ["I", "A", "C", "ID", "AC", "IR"],
    MrzFormat.TD2: ["I", "A", "C", "ID"],
    MrzFormat.TD3: ["P", "PD", "PO"],
    MrzFormat.MRVA: ["V", "VA", "VC"],
    MrzFormat.MRVB: ["V", "VA", "VC"],
}
PERSONAL_ROOM = {
    MrzFormat.TD1: 15,
    MrzFormat.TD2: 7,
    MrzFormat.TD3: 14,
    MrzFormat.MRVA: 16,
    MrzFormat.MRVB: 8,
}


def _yymmdd(day: datetime.date) -> str:
    return day.strftime("%y%m%d")


def _words(max_words: int, min_words: int) -> st.SearchStrategy[str]:
    word = st.text(string.ascii_uppercase, min_size=1, max_size=6)
    return st.lists(word, min_size=min_words, max_size=max_words).map(" ".join)


@st.composite
def mrz_fields(draw: st.DrawFn, fmt: MrzFormat) -> MrzFields:
    """Fields as parse() gives them back (no trailing filler, names with single spaces), with
    calendar dates that the century rules at TODAY place where they were drawn."""
    longest = 14 if fmt is MrzFormat.TD1 else 9
    number = draw(st.text(ALNUM, min_size=1, max_size=longest))
    room = PERSONAL_ROOM[fmt] - (len(number) - 9 + 2 if len(number) > 9 else 0)
    born = draw(st.dates(datetime.date(1925, 1, 1), TODAY))
    expires = draw(st.dates(datetime.date(1975, 1, 1), datetime.date(2073, 12, 31)))
    return MrzFields(
        document_type=draw(st.sampled_from(DOCUMENT_TYPES[fmt])),
        issuing_state=draw(st.text(string.ascii_uppercase, min_size=1, max_size=3)),
        document_number=number,
        nationality=draw(st.text(string.ascii_uppercase, min_size=1, max_size=3)),
        birth_date=_yymmdd(born),
        sex=draw(st.sampled_from("MF<")),
        expiry_date=_yymmdd(expires),
        surname=draw(_words(2, 1)),
        given_names=draw(_words(2, 0)),
        personal_number=draw(st.text(ALNUM, max_size=room)),
        optional_data_2=draw(st.text(ALNUM, max_size=11)) if fmt is MrzFormat.TD1 else "",
    )


@st.composite
def formats_and_fields(draw: st.DrawFn) -> tuple[MrzFormat, MrzFields]:
    fmt = draw(st.sampled_from(list(MrzFormat)))
    return fmt, draw(mrz_fields(fmt))


@given(formats_and_fields())
def test_compose_parse_round_trip(drawn: tuple[MrzFormat, MrzFields]) -> None:
    fmt, fields = drawn
    lines = compose(fmt, fields)
    assert tuple(len(line) for line in lines) == (LINE_SHAPES[fmt][1],) * LINE_SHAPES[fmt][0]
    result = parse(lines, today=TODAY)
    assert result.format is fmt
    assert result.valid, result.checks
    assert result.fields == fields
    assert result.lines == lines and result.corrections == ()


# Typed from the standard, independently of the module: the positions each format's check digits
# cover (check digits included), the date positions and the check-digit positions.
_TWO_LINE_DATES = {(1, c) for c in (*range(13, 19), *range(21, 27))}
COVERED: dict[MrzFormat, set[tuple[int, int]]] = {
    MrzFormat.TD1: {(0, c) for c in range(5, 30)}
    | {(1, c) for c in (*range(0, 7), *range(8, 15), *range(18, 30))},
    MrzFormat.TD2: {(1, c) for c in (*range(0, 10), *range(13, 20), *range(21, 36))},
    MrzFormat.TD3: {(1, c) for c in (*range(0, 10), *range(13, 20), *range(21, 44))},
    MrzFormat.MRVA: {(1, c) for c in (*range(0, 10), *range(13, 20), *range(21, 28))},
    MrzFormat.MRVB: {(1, c) for c in (*range(0, 10), *range(13, 20), *range(21, 28))},
}
DATES: dict[MrzFormat, set[tuple[int, int]]] = {
    MrzFormat.TD1: {(1, c) for c in (*range(0, 6), *range(8, 14))},
    MrzFormat.TD2: _TWO_LINE_DATES,
    MrzFormat.TD3: _TWO_LINE_DATES,
    MrzFormat.MRVA: _TWO_LINE_DATES,
    MrzFormat.MRVB: _TWO_LINE_DATES,
}
CHECK_DIGITS: dict[MrzFormat, set[tuple[int, int]]] = {
    MrzFormat.TD1: {(0, 14), (1, 6), (1, 14), (1, 29)},
    MrzFormat.TD2: {(1, 9), (1, 19), (1, 27), (1, 35)},
    MrzFormat.TD3: {(1, 9), (1, 19), (1, 27), (1, 42), (1, 43)},
    MrzFormat.MRVA: {(1, 9), (1, 19), (1, 27)},
    MrzFormat.MRVB: {(1, 9), (1, 19), (1, 27)},
}

FILLER_CHECK_DIGITS = {MrzFormat.TD1: {(0, 14)}, MrzFormat.TD3: {(1, 42)}}
"""Check-digit positions where ICAO also allows a filler (TD1 long number, TD3 empty personal
number)."""


def _value(char: str) -> int:
    return 0 if char == "<" else int(char, 36)


def _undetectable(fmt: MrzFormat, position: tuple[int, int], old: str, new: str) -> bool:
    """A substitution no 7-3-1 check digit can see: both characters have the same value modulo
    10 (0 < A K U, 1 B L V, 6 G Q, ...). In a date (digits required, calendar date required)
    and in a check-digit position (a digit required) it is still caught, except '<' <-> '0' in
    a check-digit position: TD3's empty personal number and TD1's long document number may put
    a filler there. In a document number or optional data it is genuinely undetectable."""
    if _value(old) % 10 != _value(new) % 10:
        return False
    if position in DATES[fmt]:
        return False
    return not (position in CHECK_DIGITS[fmt] and "<" not in (old, new))


@given(formats_and_fields(), st.data())
def test_a_covered_misread_never_gives_a_valid_wrong_field(
    drawn: tuple[MrzFormat, MrzFields], data: st.DataObject
) -> None:
    fmt, fields = drawn
    lines = compose(fmt, fields)
    line, col = data.draw(st.sampled_from(sorted(COVERED[fmt])))
    old = lines[line][col]
    new = data.draw(st.sampled_from([c for c in ALPHABET if c != old]))
    assume(not _undetectable(fmt, (line, col), old, new))
    result = parse(swap(lines, line, col, new), today=TODAY)
    if result.valid:
        assert result.fields == fields, (lines, (line, col, new), result.corrections)


TRICKY = [
    (MrzFormat.TD1, dataclasses.replace(ANNA_CARD, document_number="0" * 14, personal_number="")),
    (MrzFormat.TD1, MrzFields("I", "A", "000017CEHRW", "A", "000101", "M", "000101", "A", "", "Q")),
    (
        MrzFormat.TD1,
        dataclasses.replace(ANNA_CARD, document_number="000000000", personal_number="00"),
    ),
    (MrzFormat.TD3, dataclasses.replace(ANNA, document_number="O0D8B1", personal_number="")),
    (MrzFormat.TD2, dataclasses.replace(ANNA_CARD, document_number="0", personal_number="0")),
]


@pytest.mark.parametrize(
    ("fmt", "fields"), [(f, x) for f, _, x in SPECIMENS] + TRICKY, ids=lambda v: str(v)[:12]
)
def test_every_covered_misread_of_these_is_refused_or_restored(
    fmt: MrzFormat, fields: MrzFields
) -> None:
    """Every single-character misread of every covered position, not a sample."""
    lines = compose(fmt, fields)
    for line, col in sorted(COVERED[fmt]):
        old = lines[line][col]
        for new in ALPHABET:
            if new == old or _undetectable(fmt, (line, col), old, new):
                continue
            result = parse(swap(lines, line, col, new), today=TODAY)
            assert not result.valid or result.fields == fields, (line, col, new)


@given(formats_and_fields(), st.data())
def test_a_confused_digit_in_a_date_or_check_digit_is_always_restored(
    drawn: tuple[MrzFormat, MrzFields], data: st.DataObject
) -> None:
    fmt, fields = drawn
    lines = compose(fmt, fields)
    places = [
        p
        for p in sorted(DATES[fmt] | CHECK_DIGITS[fmt])
        if lines[p[0]][p[1]] in PARTNERS
        # a filler may stand there, and no check digit tells a filler from a 0: not corrected
        and not (p in FILLER_CHECK_DIGITS.get(fmt, set()) and lines[p[0]][p[1]] == "0")
    ]
    line, col = data.draw(st.sampled_from(places))
    letter = data.draw(st.sampled_from(PARTNERS[lines[line][col]]))
    misread = swap(lines, line, col, letter)
    result = parse(misread, today=TODAY)
    assert result.valid and result.fields == fields and result.lines == lines
    assert len(result.corrections) == 1
    assert not parse(misread, today=TODAY, correct=False).valid
