"""dlib's serialization primitives, on byte strings written out by hand from its format."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from faceledger.embed._dlib_format import DlibReader
from faceledger.errors import ModelError


def test_integers_are_a_size_byte_then_little_endian_magnitude() -> None:
    r = DlibReader(b"\x01\x05" + b"\x81\x1c" + b"\x02\x00\x01" + b"\x01\x00")
    assert [r.integer() for _ in range(4)] == [5, -28, 256, 0]
    assert r.at_end


def test_reals_are_mantissa_times_two_to_the_exponent() -> None:
    # 0xa3d70a * 2**-28 is the 0.04 margin stored in dlib's face model
    r = DlibReader(b"\x03\x0a\xd7\xa3\x81\x1c" + b"\x01\x03\x01\x00" + b"\x01\x00\x02\x00\x7d")
    assert r.real() == pytest.approx(0.04, rel=1e-6)
    assert r.real() == 3.0
    assert r.real() == math.inf  # exponent 32000 marks infinity


def test_strings_booleans_and_tensors() -> None:
    values = np.arange(6, dtype="<f4")
    tensor = b"\x01\x02" + b"\x01\x01\x01\x02\x01\x03\x01\x01" + values.tobytes()
    r = DlibReader(b"\x01\x04relu" + b"10" + tensor)
    assert r.string() == "relu"
    assert (r.boolean(), r.boolean()) == (True, False)
    t = r.tensor()
    assert t.shape == (1, 2, 3, 1) and t.dtype == np.float32
    assert np.array_equal(t.reshape(-1), values)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",  # an integer with no bytes
        b"\x09" + b"\x00" * 9,  # more than 8 bytes
        b"\x02\x05",  # cut short
    ],
)
def test_malformed_integers_raise_model_error(data: bytes) -> None:
    with pytest.raises(ModelError):
        DlibReader(data).integer()


def test_truncated_tensor_raises_model_error() -> None:
    data = b"\x01\x02" + b"\x01\x01" * 4 + struct.pack("<f", 1.0)[:2]
    with pytest.raises(ModelError, match="end of data"):
        DlibReader(data).tensor()


def test_bad_boolean_and_old_ascii_floats_are_refused() -> None:
    with pytest.raises(ModelError, match="boolean"):
        DlibReader(b"x").boolean()
    with pytest.raises(ModelError, match="ASCII"):
        DlibReader(b"1.5 ").real()
