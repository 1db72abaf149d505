"""1:1 verification metrics on genuine and impostor similarity scores (pure numpy).

Conventions used throughout (also in docs/evaluation.md):

* A comparison is a *match* when ``score >= threshold``. FMR(t) is the fraction of impostor
  scores ``>= t``; FNMR(t) the fraction of genuine scores ``< t``.
* A score of ``-inf`` means "no comparison was possible" (e.g. no face in one image): it is a
  non-match at every threshold, so it raises FNMR for genuine pairs and never counts as a false
  match. NaN and ``+inf`` are refused.
* Empty sides never crash: a rate over zero pairs is ``None`` (JSON ``null``); curve arrays
  over zero pairs are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument
from faceledger.evaluate.intervals import Interval, clopper_pearson

Scores = npt.NDArray[np.float64]
Labels = npt.NDArray[np.bool_]

FMR_TARGETS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
"""False-match rates at which FNMR is reported (each only if enough impostor pairs)."""

_EPS = 1e-9


def as_scores(values: npt.ArrayLike, name: str = "scores") -> Scores:
    """A 1-D float64 copy of ``values``; refuses NaN and +inf (``-inf`` means no comparison)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise InvalidArgument(f"{name} contain NaN")
    if np.isposinf(arr).any():
        raise InvalidArgument(f"{name} contain +inf")
    return arr


def rate_key(rate: float) -> str:
    """The JSON key of a rate: plain decimal notation, e.g. ``0.01``, ``0.0001``, ``0.00001``."""
    return np.format_float_positional(rate, trim="-")


def measurable(rate: float, n: int) -> bool:
    """A target rate is measurable on ``n`` trials when one error is allowed (n*rate >= 1)."""
    return n > 0 and n * rate >= 1.0 - _EPS


def pairs_needed(rate: float) -> int:
    return math.ceil(1.0 / rate - _EPS)


# ---------------------------------------------------------------------------- error curve


@dataclass(frozen=True)
class ErrorCurve:
    """FMR and FNMR at every distinct observed score (ascending), plus a reject-all point.

    ``thresholds[0]`` is the lowest finite score (accepts every comparable pair); the last
    threshold lies just above the highest score and accepts nothing. This is both the ROC
    (1 - FNMR against FMR) and the DET (FNMR against FMR).
    """

    thresholds: Scores
    fmr: Scores
    fnmr: Scores
    genuine: int
    impostor: int


def error_curve(genuine: npt.ArrayLike, impostor: npt.ArrayLike) -> ErrorCurve:
    g = np.sort(as_scores(genuine, "genuine scores"))
    i = np.sort(as_scores(impostor, "impostor scores"))
    both = np.concatenate((g, i))
    finite = np.unique(both[np.isfinite(both)])
    if finite.size:
        thresholds = np.append(finite, np.nextafter(finite[-1], np.inf))
    else:
        thresholds = np.array([np.inf])
    if i.size:
        fmr = (i.size - np.searchsorted(i, thresholds, side="left")) / i.size
    else:
        fmr = np.full(thresholds.shape, np.nan)
    if g.size:
        fnmr = np.searchsorted(g, thresholds, side="left") / g.size
    else:
        fnmr = np.full(thresholds.shape, np.nan)
    return ErrorCurve(thresholds, fmr.astype(np.float64), fnmr.astype(np.float64), g.size, i.size)


# ---------------------------------------------------------------------------- EER


@dataclass(frozen=True)
class EqualErrorRate:
    value: float
    threshold: float
    """The curve threshold nearest the crossing (ties: the higher, stricter threshold)."""
    fmr: float
    fnmr: float
    """Measured rates at ``threshold``."""


def equal_error_rate(curve: ErrorCurve) -> EqualErrorRate | None:
    """EER by linear interpolation between the two curve points where FNMR overtakes FMR.

    Along the curve (thresholds ascending) d = FMR - FNMR never increases. With i the last
    point where d >= 0 and j = i + 1, the EER is the point of the straight ROC segment from i to
    j where FMR = FNMR. A tie between genuine and impostor scores makes one diagonal step, and
    the interpolated value equals the expected rate when tied comparisons are decided at random.
    If FNMR exceeds FMR already at the lowest threshold (only when many comparisons failed),
    the EER is the mean of the two rates there. ``None`` when either side has no pairs.
    """
    if curve.genuine == 0 or curve.impostor == 0:
        return None
    d = curve.fmr - curve.fnmr
    nonneg = np.flatnonzero(d >= 0)
    if nonneg.size == 0:
        return EqualErrorRate(
            float((curve.fmr[0] + curve.fnmr[0]) / 2),
            float(curve.thresholds[0]),
            float(curve.fmr[0]),
            float(curve.fnmr[0]),
        )
    i = int(nonneg[-1])
    j = i + 1  # exists: the last point rejects everything, so d = -1 there
    d0, d1 = float(d[i]), float(d[j])
    lam = d0 / (d0 - d1)
    value = float(curve.fmr[i] + lam * (curve.fmr[j] - curve.fmr[i]))
    k = i if abs(d0) < abs(d1) else j
    return EqualErrorRate(
        value, float(curve.thresholds[k]), float(curve.fmr[k]), float(curve.fnmr[k])
    )


# ---------------------------------------------------------------------------- operating points


@dataclass(frozen=True)
class VerifyOperatingPoint:
    """Measured rates at the threshold chosen for a target false-match rate."""

    target: float
    threshold: float
    false_matches: int
    impostor: int
    false_non_matches: int
    genuine: int
    fmr_ci: Interval
    fnmr_ci: Interval | None

    @property
    def fmr(self) -> float:
        return self.false_matches / self.impostor

    @property
    def fnmr(self) -> float | None:
        return self.false_non_matches / self.genuine if self.genuine else None


@dataclass(frozen=True)
class NotMeasurable:
    """A target rate below what the number of trials can measure."""

    target: float
    needed: int
    available: int

    @property
    def reason(self) -> str:
        return f"needs at least {self.needed:,} trials, have {self.available:,}"


def threshold_at_fmr(curve: ErrorCurve, target: float) -> float | None:
    """The lowest curve threshold whose FMR is <= ``target`` (None if not measurable).

    The threshold is an observed score (or just above the highest score): every impostor
    scoring at or above it is a false match, and at most ``floor(target * impostors)`` do.
    """
    if not 0.0 < target <= 1.0:
        raise InvalidArgument(f"target rate must be in (0, 1], got {target}")
    if not measurable(target, curve.impostor):
        return None
    idx = int(np.argmax(curve.fmr <= target + _EPS))
    return float(curve.thresholds[idx])


def rates_at(
    genuine: npt.ArrayLike, impostor: npt.ArrayLike, threshold: float
) -> tuple[int, int, int, int]:
    """(false matches, impostor pairs, false non-matches, genuine pairs) at ``threshold``."""
    g = as_scores(genuine, "genuine scores")
    i = as_scores(impostor, "impostor scores")
    false_matches = int(np.count_nonzero(i >= threshold))
    false_non_matches = int(np.count_nonzero(g < threshold))
    return false_matches, i.size, false_non_matches, g.size


def operating_point(
    genuine: npt.ArrayLike,
    impostor: npt.ArrayLike,
    threshold: float,
    target: float = float("nan"),
    confidence: float = 0.95,
) -> VerifyOperatingPoint:
    fm, ni, fnm, ng = rates_at(genuine, impostor, threshold)
    if ni == 0:
        raise InvalidArgument("an operating point needs at least one impostor pair")
    return VerifyOperatingPoint(
        target=target,
        threshold=threshold,
        false_matches=fm,
        impostor=ni,
        false_non_matches=fnm,
        genuine=ng,
        fmr_ci=clopper_pearson(fm, ni, confidence),
        fnmr_ci=clopper_pearson(fnm, ng, confidence) if ng else None,
    )


def fnmr_at_fmr(
    genuine: npt.ArrayLike,
    impostor: npt.ArrayLike,
    targets: Sequence[float] = FMR_TARGETS,
    confidence: float = 0.95,
) -> dict[float, VerifyOperatingPoint | NotMeasurable]:
    """FNMR (with Clopper-Pearson intervals) at each target FMR the impostor count supports.

    A target f is measurable when impostors * f >= 1; below that, no threshold can show a rate
    of f and the entry is :class:`NotMeasurable`.
    """
    g = as_scores(genuine, "genuine scores")
    i = as_scores(impostor, "impostor scores")
    curve = error_curve(g, i)
    out: dict[float, VerifyOperatingPoint | NotMeasurable] = {}
    for target in targets:
        t = threshold_at_fmr(curve, target)
        if t is None:
            out[target] = NotMeasurable(target, pairs_needed(target), i.size)
        else:
            out[target] = operating_point(g, i, t, target, confidence)
    return out


# ---------------------------------------------------------------------------- accuracy, folds


def _as_labels(same: npt.ArrayLike, n: int) -> Labels:
    lab = np.asarray(same, dtype=bool).reshape(-1)
    if lab.size != n:
        raise InvalidArgument(f"{lab.size} labels for {n} scores")
    return lab


def accuracy_at(scores: npt.ArrayLike, same: npt.ArrayLike, threshold: float) -> float:
    """Fraction of pairs decided correctly (genuine >= threshold, impostor < threshold)."""
    s = as_scores(scores)
    lab = _as_labels(same, s.size)
    if s.size == 0:
        raise InvalidArgument("accuracy needs at least one pair")
    return float(np.mean((s >= threshold) == lab))


def best_accuracy_threshold(scores: npt.ArrayLike, same: npt.ArrayLike) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on these pairs.

    Candidates are the lowest finite score (accept all), the midpoints between consecutive
    distinct finite scores, and a value just above the highest (reject all). When several
    candidates reach the best accuracy, the median one is taken (the lower of the two middle
    ones for an even count), which keeps the threshold away from the edges of a flat optimum.
    """
    s = as_scores(scores)
    lab = _as_labels(same, s.size)
    if s.size == 0:
        raise InvalidArgument("threshold selection needs at least one pair")
    u = np.unique(s[np.isfinite(s)])
    if u.size == 0:
        return float("inf"), float(np.mean(~lab))
    candidates = np.concatenate(([u[0]], (u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)]))
    g = np.sort(s[lab])
    i = np.sort(s[~lab])
    accepted_genuine = g.size - np.searchsorted(g, candidates, side="left")
    rejected_impostor = np.searchsorted(i, candidates, side="left")
    correct = accepted_genuine + rejected_impostor
    best = np.flatnonzero(correct == correct.max())
    k = int(best[(best.size - 1) // 2])
    return float(candidates[k]), float(correct[k] / s.size)


@dataclass(frozen=True)
class Fold:
    start: int
    stop: int
    """Row range ``[start, stop)`` of the held-out fold, in file order."""
    threshold: float
    """Chosen on the other folds."""
    accuracy: float
    """On this fold."""


@dataclass(frozen=True)
class KFoldAccuracy:
    folds: tuple[Fold, ...]

    @property
    def mean(self) -> float:
        return float(np.mean([f.accuracy for f in self.folds]))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof = 1) of the per-fold accuracies."""
        return float(np.std([f.accuracy for f in self.folds], ddof=1))


def fold_bounds(n: int, n_folds: int) -> list[tuple[int, int]]:
    """Contiguous folds in file order: fold k holds rows ``[k*n//N, (k+1)*n//N)``.

    Fold sizes differ by at most one when ``n`` is not a multiple of ``N``.
    """
    if n_folds < 2:
        raise InvalidArgument(f"k-fold accuracy needs at least 2 folds, got {n_folds}")
    if n < n_folds:
        raise InvalidArgument(f"{n_folds} folds need at least {n_folds} pairs, have {n}")
    return [(k * n // n_folds, (k + 1) * n // n_folds) for k in range(n_folds)]


def kfold_accuracy(scores: npt.ArrayLike, same: npt.ArrayLike, n_folds: int) -> KFoldAccuracy:
    """Threshold chosen on N-1 contiguous folds (max accuracy), tested on the held-out one."""
    s = as_scores(scores)
    lab = _as_labels(same, s.size)
    folds: list[Fold] = []
    for start, stop in fold_bounds(s.size, n_folds):
        train = np.ones(s.size, dtype=bool)
        train[start:stop] = False
        t, _ = best_accuracy_threshold(s[train], lab[train])
        acc = float(np.mean((s[start:stop] >= t) == lab[start:stop]))
        folds.append(Fold(start, stop, t, acc))
    return KFoldAccuracy(tuple(folds))


# ---------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class GroupRates:
    """Error counts of one demographic group (or the cross-group bucket) at one threshold."""

    genuine: int
    impostor: int
    false_non_matches: int
    false_matches: int
    fnmr_ci: Interval | None
    fmr_ci: Interval | None

    @property
    def n(self) -> int:
        return self.genuine + self.impostor

    @property
    def fmr(self) -> float | None:
        return self.false_matches / self.impostor if self.impostor else None

    @property
    def fnmr(self) -> float | None:
        return self.false_non_matches / self.genuine if self.genuine else None


@dataclass(frozen=True)
class Differential:
    """max/min ratio of one rate across groups (None when undefined, e.g. min is 0)."""

    ratio: float | None
    max_group: str | None
    max_rate: float | None
    min_group: str | None
    min_rate: float | None


@dataclass(frozen=True)
class GroupReport:
    threshold: float
    groups: Mapping[str, GroupRates]
    cross_group: GroupRates
    """Pairs whose two sides carry different group labels."""
    unlabelled: int
    """Pairs with a missing label on either side (counted nowhere else)."""
    fmr_differential: Differential
    fnmr_differential: Differential


def _rates(scores: Scores, same: Labels, threshold: float, confidence: float) -> GroupRates:
    g = scores[same]
    i = scores[~same]
    fnm = int(np.count_nonzero(g < threshold))
    fm = int(np.count_nonzero(i >= threshold))
    return GroupRates(
        genuine=g.size,
        impostor=i.size,
        false_non_matches=fnm,
        false_matches=fm,
        fnmr_ci=clopper_pearson(fnm, g.size, confidence) if g.size else None,
        fmr_ci=clopper_pearson(fm, i.size, confidence) if i.size else None,
    )


def differential(rates: Mapping[str, float | None]) -> Differential:
    """Ratio of the highest to the lowest defined rate; ``ratio`` is None if the lowest is 0
    or fewer than two groups have a defined rate. Ties resolve to the first name in order."""
    defined = sorted((name, r) for name, r in rates.items() if r is not None)
    if not defined:
        return Differential(None, None, None, None, None)
    hi_name, hi = max(defined, key=lambda x: x[1])
    lo_name, lo = min(defined, key=lambda x: x[1])
    ratio = hi / lo if len(defined) >= 2 and lo > 0 else None
    return Differential(ratio, hi_name, hi, lo_name, lo)


def group_rates(
    scores: npt.ArrayLike,
    same: npt.ArrayLike,
    group_a: Sequence[str],
    group_b: Sequence[str],
    threshold: float,
    confidence: float = 0.95,
) -> GroupReport:
    """FMR and FNMR per group at one threshold.

    A pair counts for group g when both sides are labelled g (for genuine and impostor pairs
    alike); pairs with two different labels go to ``cross_group``; pairs with an empty label
    are only counted in ``unlabelled``.
    """
    s = as_scores(scores)
    lab = _as_labels(same, s.size)
    if len(group_a) != s.size or len(group_b) != s.size:
        raise InvalidArgument("group labels and scores differ in length")
    ga = np.asarray(group_a, dtype=object)
    gb = np.asarray(group_b, dtype=object)
    labelled = (ga != "") & (gb != "")
    within = labelled & (ga == gb)
    names = sorted({str(x) for x in ga[within]})
    groups = {
        name: _rates(s[within & (ga == name)], lab[within & (ga == name)], threshold, confidence)
        for name in names
    }
    cross = labelled & ~within
    return GroupReport(
        threshold=threshold,
        groups=groups,
        cross_group=_rates(s[cross], lab[cross], threshold, confidence),
        unlabelled=int(np.count_nonzero(~labelled)),
        fmr_differential=differential({k: v.fmr for k, v in groups.items()}),
        fnmr_differential=differential({k: v.fnmr for k, v in groups.items()}),
    )
