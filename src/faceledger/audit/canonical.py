"""Canonical JSON (RFC 8785, "JCS") so that an audit entry hashes to the same bytes everywhere.

Rules, chosen so that any JCS implementation in any language reproduces our bytes:

- objects: keys sorted by their UTF-16 code units, no whitespace, duplicate keys refused;
- strings: UTF-8, escaping only ``"``, ``\\`` and control characters (``\\n`` style where one
  exists, else ``\\u00xx``); lone surrogates are refused;
- numbers: IEEE-754 doubles written as ECMAScript's ``Number.prototype.toString`` does (the
  shortest digits that round-trip: ``1e-7``, ``0.00001``, ``1.5``); an integral float such as
  ``1.0`` is written ``1`` and so reads back as an int of equal value; NaN and infinities are
  refused; integers beyond 2**53 only where they are a double's text (as ``1e16`` reads back);
- ``true``, ``false``, ``null``; tuples are arrays.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from faceledger.errors import InvalidArgument

Json = None | bool | int | float | str | Sequence["Json"] | Mapping[str, "Json"]
"""A JSON value as Python data."""

_MAX_SAFE_INT = 2**53
_encode_string: Callable[[str], str] = json.encoder.encode_basestring  # C version if built


def canonical_json(value: object) -> str:
    """The canonical text of ``value``; raises :class:`InvalidArgument` if it is not JSON."""
    parts: list[str] = []
    _encode(value, parts, depth=0)
    return "".join(parts)


def canonical_bytes(value: object) -> bytes:
    """``canonical_json(value)`` as UTF-8."""
    return canonical_json(value).encode("utf-8")


def parse_json(text: str) -> Any:
    """Parse JSON strictly: no NaN/Infinity, no duplicate keys (raises ``ValueError``)."""
    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_pairs)


def parse_canonical(text: str) -> Any:
    """Parse text that must be canonical (raises ``ValueError`` if it is not).

    Faster than :func:`parse_json`: duplicate keys need no separate check, since a text with
    them never equals the canonical form of what it parses to.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
        again = canonical_json(value)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except InvalidArgument as exc:
        raise ValueError(exc.message) from None
    if again != text:
        raise ValueError("not in canonical form")
    return value


def format_number(x: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a finite double."""
    if not math.isfinite(x):
        raise InvalidArgument(f"not a finite number: {x!r}")
    if x == 0:
        return "0"  # also -0.0, as in ECMAScript
    text = repr(x)
    if "e" not in text:
        # 1e-4 <= |x| < 1e16: repr and ECMAScript print the same digits, bar a trailing ".0"
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip, which is what ECMAScript requires too
    t = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(str(d) for d in t.digits)
    exponent = int(t.exponent)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    k = len(digits)
    n = exponent + k  # value = 0.d1d2...dk * 10**n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _encode(value: object, out: list[str], depth: int) -> None:  # noqa: C901
    # exact-type checks first: this runs for every value of every entry during verification
    kind = type(value)
    if kind is str:
        out.append(_string(value))  # type: ignore[arg-type]
    elif kind is float:
        out.append(format_number(value))  # type: ignore[arg-type]
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(_integer(value))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        if depth > 64:
            raise InvalidArgument("JSON value nested too deeply")
        items = list(value.items())
        for key, _ in items:
            if type(key) is not str:
                raise InvalidArgument(f"JSON object keys must be strings, got {key!r}")
        if all(key.isascii() or max(key) < "\ud800" for key, _ in items):
            items.sort(key=_first)  # below U+D800 code point order is UTF-16 code unit order
        else:
            items.sort(key=lambda kv: kv[0].encode("utf-16-be", "surrogatepass"))
        out.append("{")
        first = True
        for key, item in items:
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            _encode(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        if depth > 64:
            raise InvalidArgument("JSON value nested too deeply")
        out.append("[")
        first = True
        for item in value:
            if not first:
                out.append(",")
            first = False
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise InvalidArgument(f"value of type {type(value).__name__} is not JSON")


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def _integer(value: int) -> str:
    text = str(value)
    if abs(value) <= _MAX_SAFE_INT or format_number(float(value)) == text:
        # beyond 2**53 only a double printed in full (1e16 reads back as such an int)
        return text
    raise InvalidArgument(f"integer {value} is not exactly representable in JSON")


def _string(s: str) -> str:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument("string contains a lone surrogate") from None
    # json's non-ASCII string encoder matches JCS: only '"', '\\' and C0 controls are
    # escaped, with the short forms \b \t \n \f \r and lowercase \u00xx otherwise.
    return _encode_string(s)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in canonical JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result
