"""AS-norm maths, cohort choice, tail model and open-set calibration, by hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faceledger.errors import CalibrationError, InvalidArgument
from faceledger.match.identify import comparison_fmr_for
from faceledger.match.normalise import (
    Cohort,
    as_norm,
    candidate_stats,
    drop_one,
    normalise,
    probe_stats,
    select_evenly,
    top_k_stats,
)
from faceledger.match.openset import (
    Split,
    calibrate_openset,
    fit_tail,
    impostor_scores,
    subject_halves,
)
from faceledger.models.calibration import FMRCurve, OpenSetCalibration, TailModel


def test_top_k_stats_takes_the_k_highest_and_skips_excluded_entries() -> None:
    scores = np.array([[0.9, 0.1, 0.5, 0.3]])
    mean, std = top_k_stats(scores, 2)
    assert mean[0] == pytest.approx(0.7) and std[0] == pytest.approx(0.2)
    mean, std = top_k_stats(scores, 2, np.array([[True, False, False, False]]))
    assert mean[0] == pytest.approx(0.4) and std[0] == pytest.approx(0.1)


def test_top_k_stats_uses_what_a_short_row_has_and_refuses_fewer_than_two() -> None:
    scores = np.array([[0.2, 0.6, 0.9]])
    mean, std = top_k_stats(scores, 5, np.array([[False, False, True]]))
    assert mean[0] == pytest.approx(0.4) and std[0] == pytest.approx(0.2)
    with pytest.raises(InvalidArgument):
        top_k_stats(scores, 5, np.array([[True, False, True]]))
    with pytest.raises(InvalidArgument):
        top_k_stats(scores, 1)


def test_top_k_stats_floors_a_zero_spread() -> None:
    _, std = top_k_stats(np.array([[0.5, 0.5, 0.5]]), 3)
    assert std[0] > 0


def test_as_norm_is_the_mean_of_both_sides_z_scores() -> None:
    # (0.8 - 0.5)/0.1 = 3 and (0.8 - 0.6)/0.2 = 1 → 2
    assert as_norm(0.8, 0.5, 0.1, 0.6, 0.2) == pytest.approx(2.0)


def _unit(cos: float, sign: float = 1.0) -> list[float]:
    return [cos, sign * math.sqrt(1 - cos * cos)]


def test_normalise_by_hand_in_two_dimensions() -> None:
    """Probe (1, 0); cohort of four subjects whose similarities to the probe are 0.8, 0.6, 0,
    -0.6; the candidate is subject 1's cohort template itself (raw score 0.8).

    Probe side, subject 1 left out: top-2 of (0.6, 0, -0.6) → mean 0.3, sd 0.3.
    Candidate side, own subject left out: its similarities to subjects 2..4 are 0.96, 0.6,
    0 → top-2 mean 0.78, sd 0.18. z = ½[(0.8-0.3)/0.3 + (0.8-0.78)/0.18] = 0.8889.
    """
    cohort = Cohort(
        np.array([_unit(0.8), _unit(0.6), _unit(0.0), _unit(-0.6)], dtype=np.float32),
        np.array([1, 2, 3, 4], dtype=np.int64),
    )
    z, raw = normalise([1.0, 0.0], [_unit(0.8)], [1], cohort, top_k=2)
    assert raw[0] == pytest.approx(0.8, abs=1e-6)
    assert z[0] == pytest.approx(0.5 * (0.5 / 0.3 + 0.02 / 0.18), abs=1e-5)


def test_normalise_leaves_the_candidates_subject_out_of_the_probe_side() -> None:
    """A mate sampled into the cohort must not raise the bar for itself: the same template
    scored as subject 1 (left out) and as a stranger (kept) gets a different probe mean."""
    cohort = Cohort(
        np.array([_unit(0.8), _unit(0.6), _unit(0.0), _unit(-0.6)], dtype=np.float32),
        np.array([1, 2, 3, 4], dtype=np.int64),
    )
    z, _ = normalise([1.0, 0.0], [_unit(0.8), _unit(0.8)], [1, 9], cohort, top_k=2)
    # as subject 9 nothing is left out: probe top-2 = (0.8, 0.6) → mean 0.7, sd 0.1;
    # candidate top-2 over all four = (1.0, 0.96) → mean 0.98, sd 0.02
    assert z[1] == pytest.approx(0.5 * (0.1 / 0.1 + (0.8 - 0.98) / 0.02), abs=1e-4)
    assert z[0] > z[1]


@pytest.mark.parametrize("seed", range(6))
def test_probe_and_candidate_stats_equal_brute_force_with_a_subject_left_out(seed: int) -> None:
    """Against the definition, entry by entry: random cohorts where one subject holds up to
    120 templates (more than top_k, so the probe side's short cut cannot serve it)."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(60, 400)), int(rng.integers(2, 60))
    subjects = rng.integers(0, 40, n)
    subjects[: int(rng.integers(0, 120))] = 7
    vecs = rng.normal(size=(n, 8)) + np.array([3.0] + [0.0] * 7)  # near one another
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cohort = Cohort(vecs.astype(np.float32), subjects.astype(np.int64))
    probe = vecs[0] + 0.1 * rng.normal(size=8)
    cands = np.arange(0, n, 3)
    cand_subj = subjects[cands]
    leave_out = int(rng.choice([7, 3, 99]))
    pm, ps = probe_stats(probe, cand_subj, cohort, k, leave_out=leave_out)
    gm, gs, floor, after = candidate_stats(vecs[cands], cand_subj, cohort, k, leave_out=leave_out)
    c64 = cohort.vectors.astype(np.float64)
    for i, (c, s) in enumerate(zip(cands, cand_subj, strict=True)):
        keep = (subjects != s) & (subjects != leave_out)
        top = np.sort(c64[keep] @ probe)[::-1][:k]
        assert pm[i] == pytest.approx(top.mean(), abs=1e-9)
        assert ps[i] == pytest.approx(max(top.std(), 1e-6), abs=1e-9)
        ranked = np.sort(c64[keep] @ vecs[c])[::-1]
        top = ranked[:k]
        assert gm[i] == pytest.approx(top.mean(), abs=1e-6)
        assert gs[i] == pytest.approx(max(top.std(), 1e-6), abs=1e-6)
        assert floor[i] == pytest.approx(top.min(), abs=1e-6)
        assert after[i] == pytest.approx(ranked[k] if ranked.size > k else -np.inf, abs=1e-6)


def test_drop_one_equals_recomputing_without_that_entry() -> None:
    """Taking one of a row's top k out and the next one in, by update, is the recomputation."""
    rng = np.random.default_rng(4)
    k = 50
    subjects = np.arange(400, dtype=np.int64)
    vecs = rng.normal(size=(400, 16)) + np.array([4.0] + [0.0] * 15)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    cohort = Cohort(vecs.astype(np.float32), subjects)
    cands = np.arange(0, 400, 7)
    full = candidate_stats(vecs[cands], subjects[cands], cohort, k)
    scores = vecs[cands] @ cohort.vectors.astype(np.float64).T
    scores[np.arange(cands.size), cands] = -np.inf
    gone = np.argsort(-scores, axis=1)[:, 17]  # the 18th best of each row leaves
    mean, std = drop_one(full, k, scores[np.arange(cands.size), gone])
    for i, c in enumerate(cands):
        exact = candidate_stats(vecs[c : c + 1], subjects[c : c + 1], cohort, k,
                                leave_out=int(gone[i]))  # fmt: skip
        assert mean[i] == pytest.approx(exact.mean[0], abs=1e-9)
        assert std[i] == pytest.approx(exact.std[0], abs=1e-7)


def test_normalise_refuses_mismatched_inputs() -> None:
    cohort = Cohort(np.eye(3, dtype=np.float32), np.arange(3, dtype=np.int64))
    with pytest.raises(InvalidArgument):
        normalise([1.0, 0.0], [[1.0, 0.0]], [5], cohort, 2)
    with pytest.raises(InvalidArgument):
        normalise([1.0, 0.0, 0.0], [[1.0, 0.0, 0.0]], [5, 6], cohort, 2)
    with pytest.raises(InvalidArgument):
        Cohort(np.eye(3, dtype=np.float32), np.arange(2, dtype=np.int64))


def test_select_evenly_is_deterministic_and_spread_over_the_ids() -> None:
    ids = np.arange(10, 20)
    assert select_evenly(ids[::-1], 4).tolist() == [10, 12, 15, 17]
    assert select_evenly(ids, 20).tolist() == list(range(10, 20))
    with pytest.raises(InvalidArgument):
        select_evenly(ids, 0)


def test_tail_model_exponential_and_pareto_by_hand() -> None:
    expo = TailModel(threshold=2.0, exceedance=0.01, shape=0.0, scale=0.5, exceedances=100)
    assert expo.fmr_at(3.0) == pytest.approx(0.01 * math.exp(-2.0))
    assert expo.threshold_for(0.01 * math.exp(-2.0)) == pytest.approx(3.0)
    pareto = TailModel(threshold=2.0, exceedance=0.01, shape=0.5, scale=1.0, exceedances=100)
    assert pareto.fmr_at(4.0) == pytest.approx(0.01 * 2.0**-2)  # (1 + 0.5·2)^(-1/0.5)
    assert pareto.threshold_for(0.0025) == pytest.approx(4.0)
    bounded = TailModel(threshold=0.0, exceedance=0.1, shape=-0.5, scale=1.0, exceedances=10)
    assert bounded.fmr_at(2.5) == 0.0  # beyond the endpoint threshold + scale/|shape| = 2
    with pytest.raises(CalibrationError):
        expo.threshold_for(0.5)


def test_fit_tail_recovers_a_known_pareto_tail() -> None:
    rng = np.random.default_rng(0)
    shape, scale = 0.2, 1.0
    u = rng.random(200_000)
    sample = scale / shape * ((1 - u) ** -shape - 1)  # inverse CDF of the GPD
    tail = fit_tail(sample, fraction=0.05)
    # exceedances over a threshold of a GPD are GPD with the same shape
    assert tail.shape == pytest.approx(shape, abs=0.05)
    assert tail.scale == pytest.approx(scale + shape * tail.threshold, rel=0.1)
    assert tail.exceedance == pytest.approx(0.05, rel=1e-3)
    with pytest.raises(CalibrationError):
        fit_tail(sample[:40])


def _calibration() -> OpenSetCalibration:
    rng = np.random.default_rng(1)
    scores = rng.standard_normal(20_000)
    return OpenSetCalibration(
        normalisation="asnorm",
        cohort_size=200,
        top_k=50,
        curve=FMRCurve.from_scores(scores),
        tail=fit_tail(scores),
        source="synthetic",
    )


def test_openset_calibration_uses_the_curve_then_the_tail_and_round_trips() -> None:
    cal = _calibration()
    # inside the measured range: the curve's threshold
    assert cal.threshold_for(0.1) == cal.curve.threshold_for(0.1)
    # far below 1/pairs: the tail model, monotone, flagged as extrapolated
    t5, t6 = cal.threshold_for(1e-5), cal.threshold_for(1e-6)
    assert cal.tail.threshold < t5 < t6
    assert cal.extrapolated(1e-6) and not cal.extrapolated(0.1)
    assert cal.fmr_at(t6).value == pytest.approx(1e-6, rel=1e-6)
    assert OpenSetCalibration.from_json(cal.to_json()).to_json() == cal.to_json()
    with pytest.raises(CalibrationError):
        cal.threshold_for(1e-12)
    bad = cal.to_json() | {"top_k": 500}
    with pytest.raises(CalibrationError):
        OpenSetCalibration.from_json(bad)


def test_fpir_threshold_rule_per_comparison() -> None:
    # 1 - (1 - 0.01)^(1/5000) = 2.0101e-6
    assert comparison_fmr_for(0.01, 5000) == pytest.approx(2.0101e-6, rel=1e-4)


def test_impostor_scores_pair_every_probe_with_every_other_subjects_template() -> None:
    rng = np.random.default_rng(2)
    vecs = rng.standard_normal((30, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    subjects = np.repeat(np.arange(15), 2)
    split = Split(vecs[:20], subjects[:20], vecs[18:], subjects[18:])
    # probes 18, 19 share subject 9 with gallery rows 18, 19 → 2·18 + 10·20 pairs
    scores = impostor_scores(split, cohort_size=10, top_k=4)
    assert scores.shape == (2 * 18 + 10 * 20,)
    with pytest.raises(InvalidArgument):
        impostor_scores(split, cohort_size=25, top_k=4)
    with pytest.raises(InvalidArgument):
        calibrate_openset([split], cohort_size=10, top_k=10)


def test_subject_halves_one_image_per_person_disjoint_and_reproducible() -> None:
    vecs = np.eye(12, dtype=np.float32)
    subjects = [0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 7]  # 8 people, some with several images
    splits = subject_halves(vecs, subjects, seeds=(0, 1))
    assert len(splits) == 4
    for sp in splits:
        assert len(set(sp.gallery_subjects.tolist())) == sp.gallery_subjects.size == 4
        assert len(set(sp.probe_subjects.tolist())) == sp.probe_subjects.size == 4
        assert not set(sp.gallery_subjects.tolist()) & set(sp.probe_subjects.tolist())
    # the two directions of one seed swap gallery and probes
    assert splits[0].gallery_subjects.tolist() == splits[1].probe_subjects.tolist()
    again = subject_halves(vecs, subjects, seeds=(0, 1))
    assert all(np.array_equal(a.gallery, b.gallery) for a, b in zip(splits, again, strict=True))
