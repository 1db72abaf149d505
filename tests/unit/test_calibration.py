"""Calibration tables against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceledger.errors import CalibrationError
from faceledger.match.calibrate import impostor_scores
from faceledger.models.calibration import CalibrationTable, FMRCurve

SCORES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]  # 10 impostor scores


def test_threshold_for_target_admits_at_most_that_fraction() -> None:
    curve = FMRCurve.from_scores(SCORES)
    # FMR 0.1 → only 1 of 10 impostors may pass: threshold just above 0.9, so 0.95 passes
    t = curve.threshold_for(0.1)
    assert 0.9 < t <= 0.95
    assert sum(s >= t for s in SCORES) == 1
    # FMR 0.3 → 3 of 10 pass (0.8, 0.9, 0.95)
    t3 = curve.threshold_for(0.3)
    assert sum(s >= t3 for s in SCORES) == 3


def test_target_below_measurable_fmr_is_refused() -> None:
    curve = FMRCurve.from_scores(SCORES)
    with pytest.raises(CalibrationError, match="below what 10 impostor pairs"):
        curve.threshold_for(0.01)


def test_fmr_of_score_beyond_all_impostors_is_an_upper_bound() -> None:
    est = FMRCurve.from_scores(SCORES).fmr_at(0.99)
    assert est.upper_bound and est.value == pytest.approx(0.1) and est.impostor_pairs == 10
    at_max = FMRCurve.from_scores(SCORES).fmr_at(0.95)
    assert not at_max.upper_bound and at_max.value == pytest.approx(0.1)


def test_fmr_of_low_score_is_one() -> None:
    est = FMRCurve.from_scores(SCORES).fmr_at(0.0)
    assert est.value == 1.0 and not est.upper_bound


def test_ties_count_as_matches() -> None:
    curve = FMRCurve.from_scores([0.5] * 4 + [0.9] * 4)
    t = curve.threshold_for(0.5)
    assert t > 0.5
    assert curve.fmr_at(0.9).value == pytest.approx(0.5)
    assert curve.fmr_at(0.7).value == pytest.approx(0.5)
    assert curve.fmr_at(0.5).value == pytest.approx(1.0)
    assert curve.fmr_at(0.91).upper_bound
    # no grid point admits fewer than 4 of 8: a stricter target lies above every impostor
    assert curve.threshold_for(0.25) > 0.9


def test_no_impostors_is_an_error() -> None:
    with pytest.raises(CalibrationError):
        FMRCurve.from_scores([])


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=300), st.floats(0.0, 1.0))
def test_fmr_estimate_never_below_measured_rate_at_grid_thresholds(
    scores: list[float], q: float
) -> None:
    curve = FMRCurve.from_scores(scores)
    arr = np.asarray(scores)
    for fmr, t in zip(curve.fmrs, curve.thresholds, strict=True):
        assert np.mean(arr >= t) == pytest.approx(fmr)
    # thresholds strictly increase while FMR does not increase
    assert all(a < b for a, b in zip(curve.thresholds, curve.thresholds[1:], strict=False))
    assert all(a >= b for a, b in zip(curve.fmrs, curve.fmrs[1:], strict=False))
    target = max(1.0 / len(scores), q)
    t = curve.threshold_for(target)
    assert np.mean(arr >= t) <= target + 1e-12
    # the estimate at any score is never below the exact measured rate there
    for score in np.linspace(-1.0, 1.0, 21):
        est = curve.fmr_at(float(score))
        assert est.value >= np.mean(arr >= score) - 1e-12


def test_worst_group_threshold_meets_target_in_every_group() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.1, 5000)
    b = rng.normal(0.2, 0.1, 5000)  # group b's impostors score higher
    table = CalibrationTable.from_scores(
        np.concatenate([a, b]), {"g=a": a, "g=b": b}, worst_group=True
    )
    t = table.threshold_for(1e-2)
    assert np.mean(a >= t) <= 1e-2 and np.mean(b >= t) <= 1e-2
    assert t == pytest.approx(table.groups["g=b"].threshold_for(1e-2))
    overall = CalibrationTable.from_scores(np.concatenate([a, b]))
    assert overall.threshold_for(1e-2) < t


def test_table_json_round_trip() -> None:
    table = CalibrationTable.from_scores(SCORES * 20, {"x=1": SCORES * 20}, source="s")
    again = CalibrationTable.from_json(table.to_json())
    assert again.threshold_for(0.1) == pytest.approx(table.threshold_for(0.1), abs=1e-6)
    assert again.groups.keys() == table.groups.keys() and again.source == "s"


def test_impostor_scores_skip_same_subject_and_self_pairs() -> None:
    v = np.eye(3, dtype=np.float32)
    v[2] = v[0]
    scores = impostor_scores(v, ["a", "b", "a"], block=2)
    # pairs (0,1) and (1,2) are impostors; (0,2) is the same subject
    assert sorted(scores.tolist()) == [0.0, 0.0]
