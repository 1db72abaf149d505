"""Binomial confidence intervals against their closed forms and published values."""

from __future__ import annotations

import math

import pytest

from faceledger.errors import InvalidArgument
from faceledger.evaluate.intervals import clopper_pearson, wilson


def test_clopper_pearson_closed_forms() -> None:
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025**0.1), abs=1e-12)
    assert clopper_pearson(10, 10) == pytest.approx((0.025**0.1, 1.0), abs=1e-12)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    # k = 1, n = 2: 1-(1-p)^2 = .025 and 1-p^2 = .025
    lo, hi = clopper_pearson(1, 2)
    assert lo == pytest.approx(1 - math.sqrt(0.975), abs=1e-12)
    assert hi == pytest.approx(math.sqrt(0.975), abs=1e-12)


def test_clopper_pearson_textbook_value_and_large_n() -> None:
    lo, hi = clopper_pearson(5, 10)  # tabulated 0.1871, 0.8129
    assert (round(lo, 4), round(hi, 4)) == (0.1871, 0.8129)
    lo, hi = clopper_pearson(7194, 719_400)  # ~1% of a million-scale impostor set
    assert lo < 0.01 < hi and hi - lo < 0.001


def test_clopper_pearson_no_information_and_bad_input() -> None:
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(InvalidArgument):
        clopper_pearson(3, 2)
    with pytest.raises(InvalidArgument):
        clopper_pearson(1, 2, confidence=1.0)


def test_wilson_values() -> None:
    # p=.5, n=10, z=1.95996: centre .5, half-width z*sqrt(.025 + z^2/400)/(1 + z^2/10)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.5 - half, abs=1e-9) and hi == pytest.approx(0.5 + half, abs=1e-9)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
