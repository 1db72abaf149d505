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

    def _curves(self) -> list[FMRCurve]:
        if self.worst_group and self.groups:
            return list(self.groups.values())
        return [self.overall]

    def threshold_for(self, target_fmr: float) -> float:
        return max(c.threshold_for(target_fmr) for c in self._curves())

    def fmr_at(self, score: float) -> FMREstimate:
        estimates = [c.fmr_at(score) for c in self._curves()]
        worst = max(estimates, key=lambda e: e.value)
        return worst

    @property
    def min_fmr(self) -> float:
        return max(1.0 / c.impostor_pairs for c in self._curves())

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
