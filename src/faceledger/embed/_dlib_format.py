"""Reader for dlib's binary serialization primitives (ints, floats, strings, bools, tensors).

dlib writes integers as a control byte (low nibble = byte count, 0x80 = negative) followed by
little-endian magnitude bytes; floats as an integer mantissa and exponent; tensors as four
dimensions followed by raw little-endian float32 values.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from faceledger.errors import ModelError

# float_details uses these exponents to mark non-finite values
_SPECIAL_EXPONENTS = {32000: math.inf, 32001: -math.inf, 32002: math.nan, 32003: math.nan}


class DlibReader:
    """Sequential reader over the bytes of one serialized dlib object."""

    def __init__(self, data: bytes, source: str = "dlib file") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.source = source

    @property
    def position(self) -> int:
        return self._pos

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.source}: {what} (at byte {self._pos})")

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise self.fail(f"unexpected end of data reading {n} bytes")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def peek_byte(self) -> int:
        if self._pos >= len(self._data):
            raise self.fail("unexpected end of data")
        return int(self._data[self._pos])

    def integer(self) -> int:
        control = int(self._take(1)[0])
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        """A float or double (mantissa × 2**exponent)."""
        if self.peek_byte() & 0x70:
            raise self.fail("old ASCII float format is not supported")
        mantissa = self.integer()
        exponent = self.integer()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return math.ldexp(float(mantissa), exponent)

    def boolean(self) -> bool:
        ch = bytes(self._take(1))
        if ch == b"1":
            return True
        if ch == b"0":
            return False
        raise self.fail(f"bad boolean byte {ch!r}")

    def string(self) -> str:
        n = self.integer()
        if n < 0 or n > 4096:
            raise self.fail(f"implausible string length {n}")
        try:
            return bytes(self._take(n)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("string is not ASCII") from exc

    def peek_string(self) -> str | None:
        """The string at the current position if one plausibly starts here, else None."""
        start = self._pos
        try:
            n = self.integer()
            if not 1 <= n <= 64:
                return None
            raw = bytes(self._take(n))
            if not all(32 < b < 127 for b in raw):
                return None
            return raw.decode("ascii")
        except ModelError:
            return None
        finally:
            self._pos = start

    def expect_string(self, *allowed: str) -> str:
        s = self.string()
        if s not in allowed:
            raise self.fail(f"expected {' or '.join(allowed)}, found {s!r}")
        return s

    def version(self, *allowed: int) -> int:
        v = self.integer()
        if v not in allowed:
            raise self.fail(f"unsupported version {v}, expected one of {allowed}")
        return v

    def tensor(self) -> npt.NDArray[np.float32]:
        """A dlib tensor as a float32 array of shape (num_samples, k, nr, nc)."""
        self.version(2)
        dims = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimension {dims}")
        count = math.prod(dims)
        raw = self._take(4 * count)
        out = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)
        return out

    def alias_shape(self) -> tuple[int, int, int, int]:
        """The shape an alias_tensor gives to a slice of a layer's parameter tensor."""
        self.version(1)
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc
