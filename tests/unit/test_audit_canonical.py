"""Canonical JSON of audit entries follows RFC 8785 (JCS): numbers, strings, key order."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceledger.audit.canonical import canonical_json, format_number, parse_json
from faceledger.errors import InvalidArgument

# ECMAScript Number.prototype.toString outputs, as listed in RFC 8785 appendix B and the
# ECMAScript specification.
NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (-1.5, "-1.5"),
    (4.5, "4.5"),
    (0.002, "0.002"),
    (0.000001, "0.000001"),
    (1e-7, "1e-7"),
    (1e21, "1e+21"),
    (1e20, "100000000000000000000"),
    (1e30, "1e+30"),
    (1e-27, "1e-27"),
    (333333333.33333329, "333333333.3333333"),
    (9007199254740992.0, "9007199254740992"),
    (295147905179352830000.0, "295147905179352830000"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (123456789012345680000.0, "123456789012345680000"),
    (0.1 + 0.2, "0.30000000000000004"),
]


@pytest.mark.parametrize(("value", "text"), NUMBERS)
def test_given_a_double_when_formatted_then_it_is_ecmascript_text(value: float, text: str) -> None:
    assert format_number(value) == text
    assert float(text) == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_given_a_non_finite_number_when_encoded_then_refused(bad: float) -> None:
    with pytest.raises(InvalidArgument):
        canonical_json({"x": bad})


def test_given_rfc8785_keys_when_encoded_then_sorted_by_utf16_code_units() -> None:
    data = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = [v for _, v in json.loads(canonical_json(data)).items()]
    assert order == [
        "Carriage Return",
        "One",
        "Control",
        "Latin Small Letter O With Diaeresis",
        "Euro Sign",
        "Emoji: Grinning Face",
        "Hebrew Letter Dalet With Dagesh",
    ]


def test_given_strings_when_encoded_then_only_quotes_backslash_and_controls_are_escaped() -> None:
    text = canonical_json(['\u20ac$\u000f\nA\'B"\\\\"/', "\x7f\u00e9"])
    assert text == '["\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/","\x7f\u00e9"]'


def test_given_rfc8785_sample_when_encoded_then_bytes_match() -> None:
    sample = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": '\u20ac$\u000f\nA\'B"\\\\"/',
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(sample) == expected


def test_given_values_that_are_not_json_when_encoded_then_refused() -> None:
    for bad in ({1: "x"}, {"x": b"bytes"}, {"x": {1, 2}}, "\ud800", {"x": 2**60 + 1}):
        with pytest.raises(InvalidArgument):
            canonical_json(bad)


def test_given_an_integral_large_int_when_encoded_then_it_reads_back_equal() -> None:
    text = canonical_json(10**16)
    assert text == "10000000000000000"
    assert canonical_json(parse_json(text)) == text


def test_given_duplicate_keys_or_nan_when_parsed_then_refused() -> None:
    with pytest.raises(ValueError):
        parse_json('{"a":1,"a":2}')
    with pytest.raises(ValueError):
        parse_json('{"a":NaN}')


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(blacklist_categories=("Cs",))), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_given_any_json_value_when_reparsed_then_canonical_text_is_stable(value: object) -> None:
    text = canonical_json(value)
    again = parse_json(text)
    assert canonical_json(again) == text
    assert json.loads(text) == json.loads(json.dumps(again))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_given_any_double_when_formatted_then_it_round_trips(value: float) -> None:
    assert float(format_number(value)) == value
