"""1:1 metrics against values computed by hand on small score sets (see each test's comment)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceledger.errors import InvalidArgument
from faceledger.evaluate.intervals import clopper_pearson
from faceledger.evaluate.metrics import (
    NotMeasurable,
    VerifyOperatingPoint,
    accuracy_at,
    best_accuracy_threshold,
    differential,
    equal_error_rate,
    error_curve,
    fnmr_at_fmr,
    fold_bounds,
    group_rates,
    kfold_accuracy,
    measurable,
    rate_key,
    threshold_at_fmr,
)

NEXT_09 = float(np.nextafter(0.9, np.inf))


def test_error_curve_steps_at_every_distinct_score() -> None:
    # genuine .9 .8 .7 .4 / impostor .1 .2 .3 .5; match iff score >= t
    curve = error_curve([0.9, 0.8, 0.7, 0.4], [0.1, 0.2, 0.3, 0.5])
    assert curve.thresholds.tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9, NEXT_09]
    assert curve.fmr.tolist() == [1, 0.75, 0.5, 0.25, 0.25, 0, 0, 0, 0]
    assert curve.fnmr.tolist() == [0, 0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1]
    assert (curve.genuine, curve.impostor) == (4, 4)


def test_eer_where_the_rates_are_exactly_equal() -> None:
    # d = FMR - FNMR reaches 0 at t = .5 (both .25): no interpolation needed
    eer = equal_error_rate(error_curve([0.9, 0.8, 0.7, 0.4], [0.1, 0.2, 0.3, 0.5]))
    assert eer is not None
    assert eer.value == pytest.approx(0.25)
    assert (eer.threshold, eer.fmr, eer.fnmr) == (0.5, 0.25, 0.25)


def test_eer_on_a_vertical_step_and_nearest_threshold() -> None:
    # genuine .9 .6 .4 / impostor .5 .3 .2 .1
    # t=.4: FMR 1/4, FNMR 0 (d=.25); t=.5: FMR 1/4, FNMR 1/3 (d=-1/12)
    # the ROC segment is vertical at FMR = .25, so EER = .25; t=.5 is nearer the crossing
    eer = equal_error_rate(error_curve([0.9, 0.6, 0.4], [0.5, 0.3, 0.2, 0.1]))
    assert eer is not None
    assert eer.value == pytest.approx(0.25)
    assert eer.threshold == 0.5
    assert eer.fnmr == pytest.approx(1 / 3)


def test_eer_with_a_genuine_impostor_tie_interpolates_the_diagonal_step() -> None:
    # genuine .8 .5 / impostor .5 .2: the tie at .5 moves both rates in one step
    # t=.5: FMR .5, FNMR 0 (d=.5); t=.8: FMR 0, FNMR .5 (d=-.5); lambda=.5 -> EER .25,
    # the expected rate if the tied pair were decided by a coin toss.
    # |d| is equal at both ends: the higher (stricter) threshold .8 is reported.
    eer = equal_error_rate(error_curve([0.8, 0.5], [0.5, 0.2]))
    assert eer is not None
    assert eer.value == pytest.approx(0.25)
    assert (eer.threshold, eer.fmr, eer.fnmr) == (0.8, 0.0, 0.5)


def test_perfect_separation_gives_zero_eer() -> None:
    eer = equal_error_rate(error_curve([0.9, 0.95], [0.1, 0.2, 0.3]))
    assert eer is not None
    assert eer.value == 0.0
    assert eer.threshold == 0.9


def test_all_genuine_no_impostor_edge_case() -> None:
    curve = error_curve([0.9, 0.8], [])
    assert curve.impostor == 0
    assert np.isnan(curve.fmr).all()
    assert equal_error_rate(curve) is None
    ops = fnmr_at_fmr([0.9, 0.8], [])
    assert all(isinstance(op, NotMeasurable) for op in ops.values())
    nm = ops[1e-2]
    assert isinstance(nm, NotMeasurable)
    assert (nm.needed, nm.available) == (100, 0)
    assert threshold_at_fmr(curve, 0.01) is None


def test_no_genuine_edge_case_still_measures_fmr() -> None:
    imp = [k / 100 for k in range(100)]
    curve = error_curve([], imp)
    assert np.isnan(curve.fnmr).all()
    assert equal_error_rate(curve) is None
    op = fnmr_at_fmr([], imp, [0.01])[0.01]
    assert isinstance(op, VerifyOperatingPoint)
    # 1 false match allowed of 100: the threshold is the highest impostor score
    assert (op.threshold, op.false_matches, op.fmr) == (0.99, 1, 0.01)
    assert op.fnmr is None and op.fnmr_ci is None


def test_empty_everything_never_crashes() -> None:
    curve = error_curve([], [])
    assert equal_error_rate(curve) is None
    assert all(isinstance(v, NotMeasurable) for v in fnmr_at_fmr([], []).values())


def test_fnmr_at_fmr_only_where_the_impostor_count_supports_it() -> None:
    # impostors 0.00 .. 0.99; genuine .5 .985 .995 1.0
    # FMR <= .01 allows 1 false match: lowest observed score above .98 is the genuine .985
    # (FMR there = 1/100); FNMR = 1/4 (the .5). FMR <= .02: 2 allowed -> threshold .98.
    imp = [k / 100 for k in range(100)]
    gen = [0.5, 0.985, 0.995, 1.0]
    ops = fnmr_at_fmr(gen, imp, [0.02, 0.01, 0.001])
    op1 = ops[0.01]
    assert isinstance(op1, VerifyOperatingPoint)
    assert op1.threshold == 0.985
    assert (op1.false_matches, op1.impostor, op1.false_non_matches, op1.genuine) == (1, 100, 1, 4)
    assert op1.fmr == 0.01 and op1.fnmr == 0.25
    assert op1.fmr_ci == clopper_pearson(1, 100)
    assert op1.fnmr_ci == clopper_pearson(1, 4)
    op2 = ops[0.02]
    assert isinstance(op2, VerifyOperatingPoint)
    assert (op2.threshold, op2.false_matches) == (0.98, 2)
    nm = ops[0.001]
    assert isinstance(nm, NotMeasurable)
    assert (nm.needed, nm.available) == (1000, 100)
    assert "1,000" in nm.reason


def test_measurability_rule_and_keys() -> None:
    assert measurable(1e-4, 10_000) and not measurable(1e-4, 9_999)
    assert measurable(1e-5, 100_000)
    assert measurable(0.003, 334) and not measurable(0.003, 333)
    assert not measurable(0.1, 0)
    assert [rate_key(r) for r in (1e-2, 1e-3, 1e-4, 1e-5, 0.003, 0.1)] == [
        "0.01", "0.001", "0.0001", "0.00001", "0.003", "0.1",
    ]  # fmt: skip


def test_failed_comparisons_are_non_matches_at_every_threshold() -> None:
    # one genuine pair could not be compared (-inf): FNMR never drops below 1/2
    curve = error_curve([0.9, -math.inf], [0.1, -math.inf])
    assert curve.thresholds.tolist()[:3] == [0.1, 0.9, float(np.nextafter(0.9, np.inf))]
    assert curve.fnmr.tolist() == [0.5, 0.5, 1.0]
    assert curve.fmr.tolist() == [0.5, 0.0, 0.0]
    # FNMR > FMR everywhere... except d = 0 at t=.1: EER .5 there
    eer = equal_error_rate(curve)
    assert eer is not None and eer.value == pytest.approx(0.5)


def test_eer_when_failures_dominate_uses_the_first_point() -> None:
    # FNMR (2/3) exceeds FMR (1/2) already at the lowest threshold: mean of both
    eer = equal_error_rate(error_curve([0.9, -math.inf, -math.inf], [0.2, -math.inf]))
    assert eer is not None
    assert eer.value == pytest.approx((0.5 + 2 / 3) / 2)


def test_bad_scores_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="NaN"):
        error_curve([0.5, float("nan")], [0.1])
    with pytest.raises(InvalidArgument, match=r"\+inf"):
        error_curve([0.5], [math.inf])
    with pytest.raises(InvalidArgument, match="target"):
        threshold_at_fmr(error_curve([0.5], [0.1]), 0.0)


def test_fold_bounds_are_contiguous_and_near_equal() -> None:
    assert fold_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert fold_bounds(6, 2) == [(0, 3), (3, 6)]
    with pytest.raises(InvalidArgument, match="at least 3 pairs"):
        fold_bounds(2, 3)
    with pytest.raises(InvalidArgument, match="at least 2 folds"):
        fold_bounds(10, 1)


def test_best_accuracy_threshold_takes_the_median_of_tied_optima() -> None:
    # train pairs .8G .3I .4G .6I: candidates .3, .35, .5, .7, >.8 score 2,3,2,3,2 of 4
    # -> optima .35 and .7; the lower middle one, .35, is taken
    t, acc = best_accuracy_threshold([0.8, 0.3, 0.4, 0.6], [1, 0, 1, 0])
    assert t == pytest.approx(0.35)
    assert acc == 0.75


def test_kfold_accuracy_by_hand() -> None:
    # 6 pairs (binary-exact scores), 3 folds of 2 in file order.
    # fold 0 (.875G .25I): rest .75G .375I .5G .625I -> optima .4375/.6875, take .4375;
    #   both held-out pairs right -> 1.0
    # fold 1 (.75G .375I): rest .875G .25I .5G .625I -> optima .375/.75, take .375;
    #   the impostor scores exactly .375 >= .375 and is wrongly accepted -> 0.5
    # fold 2 (.5G .625I): rest .875G .25I .75G .375I -> .5625 (all 4 right); both wrong -> 0
    scores = [0.875, 0.25, 0.75, 0.375, 0.5, 0.625]
    same = [1, 0, 1, 0, 1, 0]
    k = kfold_accuracy(scores, same, 3)
    assert [(f.start, f.stop) for f in k.folds] == [(0, 2), (2, 4), (4, 6)]
    assert [f.threshold for f in k.folds] == [0.4375, 0.375, 0.5625]
    assert [f.accuracy for f in k.folds] == [1.0, 0.5, 0.0]
    assert k.mean == pytest.approx(0.5)
    assert k.std == pytest.approx(0.5)  # sample std (ddof=1) of 1, .5, 0


def test_accuracy_at_threshold() -> None:
    assert accuracy_at([0.9, 0.2, 0.8, 0.3], [1, 0, 1, 0], 0.5) == 1.0
    assert accuracy_at([0.9, 0.2, 0.8, 0.3], [1, 0, 1, 0], 0.85) == 0.75
    with pytest.raises(InvalidArgument, match="labels"):
        accuracy_at([0.9, 0.2], [1], 0.5)


def test_group_rates_by_hand() -> None:
    # threshold .5
    rows = [
        (1, "f", "f", 0.9),  # accepted
        (1, "f", "f", 0.4),  # false non-match
        (0, "f", "f", 0.7),  # false match
        (0, "f", "f", 0.2),
        (1, "m", "m", 0.8),
        (0, "m", "m", 0.3),
        (0, "m", "m", 0.45),
        (0, "m", "m", 0.55),  # false match
        (0, "f", "m", 0.75),  # cross-group false match
        (0, "", "m", 0.99),  # unlabelled: counted nowhere else
    ]
    same = [r[0] for r in rows]
    rep = group_rates([r[3] for r in rows], same, [r[1] for r in rows], [r[2] for r in rows], 0.5)
    f, m = rep.groups["f"], rep.groups["m"]
    assert (f.genuine, f.impostor, f.false_non_matches, f.false_matches) == (2, 2, 1, 1)
    assert (f.fnmr, f.fmr, f.n) == (0.5, 0.5, 4)
    assert (m.genuine, m.impostor, m.fnmr) == (1, 3, 0.0)
    assert m.fmr == pytest.approx(1 / 3)
    assert f.fmr_ci == clopper_pearson(1, 2)
    cross = rep.cross_group
    assert (cross.genuine, cross.impostor, cross.fmr, cross.fnmr) == (0, 1, 1.0, None)
    assert rep.unlabelled == 1
    assert rep.fmr_differential.ratio == pytest.approx(1.5)
    assert (rep.fmr_differential.max_group, rep.fmr_differential.min_group) == ("f", "m")
    # FNMR of m is 0: the ratio is undefined, the extremes are still named
    assert rep.fnmr_differential.ratio is None
    assert (rep.fnmr_differential.max_group, rep.fnmr_differential.min_rate) == ("f", 0.0)


def test_differential_edge_cases() -> None:
    d = differential({"a": 0.02, "b": 0.01, "c": None})
    assert (d.ratio, d.max_group, d.min_group) == (2.0, "a", "b")
    assert differential({"a": 0.02}).ratio is None
    assert differential({}).max_group is None
    assert differential({"a": None}).ratio is None
