"""Open-set 1:N metrics from ranked candidate lists: CMC, FPIR, FNIR at FPIR (NIST FRTE).

Definitions (NIST FRTE 1:N / ISO/IEC 19795-1), threshold T, rank limit L:

* FPIR(T): fraction of **non-mated** searches returning at least one candidate with score
  >= T (equivalently: whose top candidate scores >= T).
* FNIR(T, L): fraction of **mated** searches whose mate is not among the first L candidates
  with a score >= T.
* CMC(r): fraction of mated searches whose mate is at rank <= r, whatever its score.

A search whose probe yielded no template returns no candidates: a miss when mated, a correct
rejection when non-mated. Ranks are pessimistic: a mate tied with another subject's score is
ranked after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceledger.errors import InvalidArgument
from faceledger.evaluate.intervals import Interval, clopper_pearson
from faceledger.evaluate.metrics import (
    NotMeasurable,
    Scores,
    error_curve,
    pairs_needed,
    threshold_at_fmr,
)

Candidate = tuple[str, float]
"""(subject id, similarity score); a search returns them best first, one per subject."""

FPIR_TARGETS: tuple[float, ...] = (0.1, 0.01, 0.003)
CMC_RANKS = 20


@dataclass(frozen=True)
class ProbeSearch:
    """One probe's search: its true subject, whether that subject is enrolled, the candidates."""

    subject: str
    mated: bool
    candidates: tuple[Candidate, ...]
    group: str = ""

    @property
    def mate_score(self) -> float | None:
        scores = [s for subj, s in self.candidates if subj == self.subject]
        return max(scores) if scores else None

    @property
    def mate_rank(self) -> int | None:
        """1-based rank of the mate among the candidates (ties counted against it)."""
        ms = self.mate_score
        if ms is None:
            return None
        return 1 + sum(1 for subj, s in self.candidates if subj != self.subject and s >= ms)

    @property
    def top_score(self) -> float:
        """Highest candidate score, ``-inf`` when nothing was returned."""
        return max((s for _, s in self.candidates), default=float("-inf"))


def _split(searches: Sequence[ProbeSearch]) -> tuple[list[ProbeSearch], list[ProbeSearch]]:
    return [s for s in searches if s.mated], [s for s in searches if not s.mated]


def cmc(searches: Sequence[ProbeSearch], max_rank: int = CMC_RANKS) -> list[float] | None:
    """CMC(1..max_rank) over the mated searches; None when there are none."""
    if max_rank < 1:
        raise InvalidArgument(f"max rank must be >= 1, got {max_rank}")
    mated, _ = _split(searches)
    if not mated:
        return None
    ranks = np.array([s.mate_rank or 0 for s in mated])
    found = ranks > 0
    n = len(mated)
    return [float(np.count_nonzero(found & (ranks <= r)) / n) for r in range(1, max_rank + 1)]


def mate_scores(searches: Sequence[ProbeSearch], rank: int) -> Scores:
    """Per mated search: the mate's score if it is within ``rank``, else ``-inf``."""
    out = []
    for s in searches:
        r = s.mate_rank
        ms = s.mate_score
        out.append(ms if (r is not None and r <= rank and ms is not None) else float("-inf"))
    return np.asarray(out, dtype=np.float64)


def nonmated_top_scores(searches: Sequence[ProbeSearch]) -> Scores:
    return np.asarray([s.top_score for s in searches], dtype=np.float64)


@dataclass(frozen=True)
class IdentOperatingPoint:
    """FPIR and FNIR measured at one threshold."""

    target: float
    threshold: float
    false_positives: int
    nonmated: int
    misses: int
    mated: int
    fpir_ci: Interval | None
    fnir_ci: Interval | None

    @property
    def fpir(self) -> float | None:
        return self.false_positives / self.nonmated if self.nonmated else None

    @property
    def fnir(self) -> float | None:
        return self.misses / self.mated if self.mated else None


def rates_at_threshold(
    searches: Sequence[ProbeSearch],
    threshold: float,
    rank: int = 1,
    target: float = float("nan"),
    confidence: float = 0.95,
) -> IdentOperatingPoint:
    if rank < 1:
        raise InvalidArgument(f"rank must be >= 1, got {rank}")
    mated, nonmated = _split(searches)
    misses = int(np.count_nonzero(mate_scores(mated, rank) < threshold))
    fps = int(np.count_nonzero(nonmated_top_scores(nonmated) >= threshold))
    return IdentOperatingPoint(
        target=target,
        threshold=threshold,
        false_positives=fps,
        nonmated=len(nonmated),
        misses=misses,
        mated=len(mated),
        fpir_ci=clopper_pearson(fps, len(nonmated), confidence) if nonmated else None,
        fnir_ci=clopper_pearson(misses, len(mated), confidence) if mated else None,
    )


def threshold_at_fpir(
    searches: Sequence[ProbeSearch], target: float, rank: int = 1
) -> float | None:
    """Lowest observed score whose FPIR <= target; None when the non-mated count cannot show
    ``target`` (non-mated * target < 1). Among thresholds with the same FPIR this one gives
    the lowest FNIR at ``rank``."""
    mated, nonmated = _split(searches)
    curve = error_curve(mate_scores(mated, rank), nonmated_top_scores(nonmated))
    return threshold_at_fmr(curve, target)


def fnir_at_fpir(
    searches: Sequence[ProbeSearch],
    targets: Sequence[float] = FPIR_TARGETS,
    rank: int = 1,
    confidence: float = 0.95,
) -> dict[float, IdentOperatingPoint | NotMeasurable]:
    """FNIR(T, rank) at the threshold T giving each target FPIR, as far as measurable."""
    _, nonmated = _split(searches)
    out: dict[float, IdentOperatingPoint | NotMeasurable] = {}
    for target in targets:
        t = threshold_at_fpir(searches, target, rank)
        if t is None:
            out[target] = NotMeasurable(target, pairs_needed(target), len(nonmated))
        else:
            out[target] = rates_at_threshold(searches, t, rank, target, confidence)
    return out
