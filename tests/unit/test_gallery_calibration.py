"""The counting rules of a gallery's own FPIR calibration (``match.gallery_calibration``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceledger.errors import InvalidArgument
from faceledger.match.gallery_calibration import (
    MIN_EVENTS,
    GalleryCalibration,
    rescaled_fpir,
)


def test_rescaling_is_identity_at_the_measured_size_and_grows_with_the_gallery() -> None:
    assert rescaled_fpir(0.01, 5000, 5000) == pytest.approx(0.01)
    # a gallery twice the size: the same threshold's FPIR there is 1-(1-f)^2
    assert rescaled_fpir(0.0199, 10_000, 5000) == pytest.approx(1 - (1 - 0.0199) ** 0.5)
    assert rescaled_fpir(0.01, 2500, 5000) > 0.01
    with pytest.raises(InvalidArgument):
        rescaled_fpir(0.0, 10, 10)


def test_threshold_counts_the_target_share_of_searches() -> None:
    scores = np.linspace(0.0, 1.0, 1000)[::-1]  # 1000 searches, best score 1.0
    cal = GalleryCalibration(np.random.default_rng(0).permutation(scores), 5000, "none")
    t = cal.threshold_for(0.05, 5000)
    assert int(np.count_nonzero(scores >= t)) == 50
    fpir, bound = cal.fpir_at(t, 5000)
    assert fpir == pytest.approx(0.05) and not bound
    # above every sampled best score: only an upper bound of 1/searches
    assert cal.fpir_at(1.5, 5000) == (pytest.approx(0.001), True)


def test_too_few_searches_refuse_to_count_a_small_rate() -> None:
    cal = GalleryCalibration(np.linspace(0, 1, 400), 400, "asnorm")
    assert cal.supports(0.1, 400) and cal.expected_events(0.1, 400) == pytest.approx(40)
    assert not cal.supports(0.01, 400)  # 4 expected false positives
    with pytest.raises(InvalidArgument, match="cannot count"):
        cal.threshold_for(0.01, 400)
    with pytest.raises(InvalidArgument):
        GalleryCalibration(np.array([0.5, np.nan]), 10, "none")


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=MIN_EVENTS * 4, max_value=3000),
    fpir=st.floats(min_value=0.02, max_value=0.4),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_counted_share_at_the_threshold_never_exceeds_the_target(
    n: int, fpir: float, seed: int
) -> None:
    scores = np.random.default_rng(seed).normal(0.9, 0.03, n)
    cal = GalleryCalibration(scores, n, "none")
    if not cal.supports(fpir, n):
        return
    counted = float(np.count_nonzero(scores >= cal.threshold_for(fpir, n))) / n
    assert fpir - 1.0 / n - 1e-12 <= counted <= fpir + 1e-12
