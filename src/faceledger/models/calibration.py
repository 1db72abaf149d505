"""Score → false-match-rate tables measured on impostor pairs.

A table holds, for a grid of false-match rates, the similarity threshold at which that
fraction of impostor pairs scored at or above it. Lookups interpolate log10(FMR) linearly in
the score. Per-group tables allow a *worst-group* operating point: the threshold at which
every group meets the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.errors import CalibrationError
from faceledger.types import FMREstimate


@dataclass(frozen=True)
class FMRCurve:
    """Step curve: at ``thresholds[i]`` the measured FMR is ``fmrs[i]`` (ascending thresholds).

    ``fmr_at`` reports the measured rate at the highest grid threshold not above the score, a
    conservative estimate (FMR only falls as the score rises) within one grid step of the
    exact rate; scores above every impostor get an upper bound of 1/pairs.
    """

    fmrs: tuple[float, ...]
    thresholds: tuple[float, ...]
    impostor_pairs: int
    max_score: float

    @classmethod
    def from_scores(cls, impostor_scores: npt.ArrayLike, points: int = 160) -> FMRCurve:
        s = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]  # descending
        n = int(s.size)
        if n == 0:
            raise CalibrationError("no impostor scores to calibrate from")
        if not np.all(np.isfinite(s)):
            raise CalibrationError("impostor scores must be finite")
        grid = np.logspace(0, math.log10(1.0 / n), num=points) if n > 1 else np.array([1.0])
        ascending = s[::-1]
        fmrs: list[float] = [1.0]
        thresholds: list[float] = [float(s[-1])]
        for fmr in grid[1:]:
            # the lowest threshold at which at most fmr·n impostors score at or above it
            k = math.floor(fmr * n + 1e-9)
            if k <= 0:
                break
            t = float(np.nextafter(s[k], np.inf))
            passing = n - int(np.searchsorted(ascending, t, side="left"))
            if passing == 0 or t <= thresholds[-1]:
                continue
            fmrs.append(passing / n)
            thresholds.append(t)
        return cls(tuple(fmrs), tuple(thresholds), n, float(s[0]))

    def threshold_for(self, target_fmr: float) -> float:
        if not 0.0 < target_fmr <= 1.0:
            raise CalibrationError(f"target FMR must be in (0, 1], got {target_fmr}")
        if target_fmr < 1.0 / self.impostor_pairs:
            raise CalibrationError(
                f"target FMR {target_fmr:g} is below what {self.impostor_pairs} impostor pairs "
                f"can measure (1/{self.impostor_pairs} = {1.0 / self.impostor_pairs:.2g})"
            )
        for fmr, t in zip(self.fmrs, self.thresholds, strict=True):
            if fmr <= target_fmr:
                return t
        # no impostor may pass: just above the highest impostor score
        return float(np.nextafter(self.max_score, np.inf))

    def fmr_at(self, score: float) -> FMREstimate:
        n = self.impostor_pairs
        if score > self.max_score:
            return FMREstimate(1.0 / n, upper_bound=True, impostor_pairs=n)
        i = int(np.searchsorted(np.asarray(self.thresholds), score, side="right")) - 1
        if i < 0:
            return FMREstimate(1.0, upper_bound=False, impostor_pairs=n)
        return FMREstimate(self.fmrs[i], upper_bound=False, impostor_pairs=n)

    def to_json(self) -> dict[str, Any]:
        return {
            "impostor_pairs": self.impostor_pairs,
            "max_score": self.max_score,
            "fmr": [float(f"{f:.6g}") for f in self.fmrs],
            "threshold": [round(t, 7) for t in self.thresholds],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FMRCurve:
        fmrs = tuple(float(x) for x in data["fmr"])
        ts = tuple(float(x) for x in data["threshold"])
        if len(fmrs) != len(ts) or not fmrs:
            raise CalibrationError("calibration curve has mismatched or empty columns")
        return cls(fmrs, ts, int(data["impostor_pairs"]), float(data["max_score"]))


@dataclass(frozen=True)
class CalibrationTable:
    """Overall curve plus optional per-group curves, with provenance."""

    overall: FMRCurve
    groups: Mapping[str, FMRCurve] = field(default_factory=dict)
    worst_group: bool = False
    """If set, thresholds and FMR estimates use the worst group at every score."""
    source: str = ""
    procedure: str = ""

    @classmethod
    def from_scores(
        cls,
        impostor_scores: npt.ArrayLike,
        groups: Mapping[str, Sequence[float] | npt.NDArray[np.float64]] | None = None,
        *,
        worst_group: bool = False,
        source: str = "",
        procedure: str = "",
        min_group_pairs: int = 100,
    ) -> CalibrationTable:
        group_curves = {
            name: FMRCurve.from_scores(scores)
            for name, scores in (groups or {}).items()
            if len(scores) >= min_group_pairs
        }
        if worst_group and not group_curves:
            raise CalibrationError("worst-group calibration needs per-group impostor scores")
        return cls(
            FMRCurve.from_scores(impostor_scores), group_curves, worst_group, source, procedure
        )

    def curves(self) -> list[FMRCurve]:
        """The curves a threshold is read from: the overall one, or each group's (worst)."""
        if self.worst_group and self.groups:
            return list(self.groups.values())
        return [self.overall]

    def threshold_for(self, target_fmr: float) -> float:
        return max(c.threshold_for(target_fmr) for c in self.curves())

    def fmr_at(self, score: float) -> FMREstimate:
        estimates = [c.fmr_at(score) for c in self.curves()]
        worst = max(estimates, key=lambda e: e.value)
        return worst

    @property
    def min_fmr(self) -> float:
        return max(1.0 / c.impostor_pairs for c in self.curves())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "procedure": self.procedure,
            "worst_group": self.worst_group,
            "overall": self.overall.to_json(),
            "groups": {k: v.to_json() for k, v in sorted(self.groups.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalibrationTable:
        try:
            return cls(
                overall=FMRCurve.from_json(data["overall"]),
                groups={k: FMRCurve.from_json(v) for k, v in data.get("groups", {}).items()},
                worst_group=bool(data.get("worst_group", False)),
                source=str(data.get("source", "")),
                procedure=str(data.get("procedure", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed calibration table: {exc}") from exc


@dataclass(frozen=True)
class TailModel:
    """Generalised Pareto tail of impostor scores above ``threshold`` (peaks over threshold).

    A fraction ``exceedance`` of impostor pairs scored above ``threshold``; beyond it the
    exceedance probability of a score ``t`` is
    ``exceedance · (1 + shape·(t − threshold)/scale)^(−1/shape)`` (exponential when shape is 0).
    It extends a measured curve to the rates a large gallery needs (FPIR 0.01 over 5,000
    templates is a per-comparison rate of 2e-6), which no affordable set of pairs measures.
    """

    threshold: float
    exceedance: float
    shape: float
    scale: float
    exceedances: int

    def fmr_at(self, score: float) -> float:
        y = max(0.0, score - self.threshold)
        if abs(self.shape) < 1e-9:
            return self.exceedance * math.exp(-y / self.scale)
        base = 1.0 + self.shape * y / self.scale
        if base <= 0.0:
            return 0.0
        return float(self.exceedance * base ** (-1.0 / self.shape))

    def threshold_for(self, target_fmr: float) -> float:
        if not 0.0 < target_fmr <= self.exceedance:
            raise CalibrationError(
                f"tail model covers rates in (0, {self.exceedance:g}], got {target_fmr}"
            )
        r = target_fmr / self.exceedance
        if abs(self.shape) < 1e-9:
            y = -self.scale * math.log(r)
        else:
            y = self.scale / self.shape * (r ** (-self.shape) - 1.0)
        return self.threshold + y

    def to_json(self) -> dict[str, Any]:
        return {
            "model": "generalised_pareto",
            "threshold": round(self.threshold, 7),
            "exceedance": float(f"{self.exceedance:.6g}"),
            "shape": round(self.shape, 6),
            "scale": round(self.scale, 7),
            "exceedances": self.exceedances,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TailModel:
        t = cls(
            float(data["threshold"]),
            float(data["exceedance"]),
            float(data["shape"]),
            float(data["scale"]),
            int(data["exceedances"]),
        )
        if not (0.0 < t.exceedance < 1.0 and t.scale > 0.0 and t.exceedances > 0):
            raise CalibrationError("tail model needs 0 < exceedance < 1, scale > 0")
        return t


MIN_TAIL_FMR = 1e-10
"""Lowest per-comparison rate the tail model is asked for (FPIR 1e-3 over 10 million)."""


@dataclass(frozen=True)
class OpenSetCalibration:
    """Per-comparison false-match rate of *normalised* 1:N scores (see ``match.normalise``).

    The normalisation's parameters are part of the calibration: a search normalises with the
    same cohort rule and top-k. ``cohort_size`` is the smallest gallery normalised and the
    cohort size the rates were measured at; a search's cohort is every template of the
    searched galleries up to ``cohort_max`` (an even sample beyond). Larger cohorts give lower
    impostor scores, so the rates are conservative for galleries above ``cohort_size``
    (``match.normalise``). Rates down to the measured curve's resolution come from the curve;
    below it, from the fitted tail (``extrapolated``).
    """

    normalisation: str
    cohort_size: int
    top_k: int
    curve: FMRCurve
    tail: TailModel
    source: str = ""
    procedure: str = ""
    cohort_max: int = 0
    """Most cohort templates; 0 (cards written before it existed): ``cohort_size``, a fixed
    cohort."""

    def __post_init__(self) -> None:
        if self.cohort_max == 0:
            object.__setattr__(self, "cohort_max", self.cohort_size)

    @property
    def measured_min_fmr(self) -> float:
        return 1.0 / self.curve.impostor_pairs

    def extrapolated(self, fmr: float) -> bool:
        """Whether fewer than 10 measured impostor pairs reach this rate's threshold, so that
        the rate rests on the tail model rather than on counted pairs."""
        return fmr < 10 * self.measured_min_fmr

    def threshold_for(self, target_fmr: float) -> float:
        if not 0.0 < target_fmr <= 1.0:
            raise CalibrationError(f"target FMR must be in (0, 1], got {target_fmr}")
        if target_fmr < MIN_TAIL_FMR:
            raise CalibrationError(
                f"per-comparison FMR {target_fmr:.2g} is below {MIN_TAIL_FMR:g}, further than "
                "the open-set calibration's tail model is trusted; raise the target FPIR"
            )
        if target_fmr < self.tail.exceedance:
            return self.tail.threshold_for(target_fmr)
        return self.curve.threshold_for(target_fmr)

    def fmr_at(self, score: float) -> FMREstimate:
        n = self.curve.impostor_pairs
        if score > self.tail.threshold:
            v = self.tail.fmr_at(score)
            if v < MIN_TAIL_FMR:
                return FMREstimate(MIN_TAIL_FMR, upper_bound=True, impostor_pairs=n)
            return FMREstimate(v, upper_bound=False, impostor_pairs=n)
        return self.curve.fmr_at(score)

    def to_json(self) -> dict[str, Any]:
        return {
            "normalisation": self.normalisation,
            "cohort_size": self.cohort_size,
            "cohort_max": self.cohort_max,
            "top_k": self.top_k,
            "source": self.source,
            "procedure": self.procedure,
            "curve": self.curve.to_json(),
            "tail": self.tail.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenSetCalibration:
        try:
            cal = cls(
                normalisation=str(data["normalisation"]),
                cohort_size=int(data["cohort_size"]),
                top_k=int(data["top_k"]),
                curve=FMRCurve.from_json(data["curve"]),
                tail=TailModel.from_json(data["tail"]),
                source=str(data.get("source", "")),
                procedure=str(data.get("procedure", "")),
                cohort_max=int(data.get("cohort_max", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"malformed open-set calibration: {exc}") from exc
        if cal.top_k < 2 or cal.cohort_size <= cal.top_k:
            raise CalibrationError("open-set calibration needs 2 <= top_k < cohort_size")
        if cal.cohort_max < cal.cohort_size:
            raise CalibrationError("open-set calibration needs cohort_max >= cohort_size")
        return cal
