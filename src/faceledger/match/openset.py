"""Calibrate normalised 1:N scores: simulated searches → per-comparison FMR curve + fitted tail.

Procedure (``benchmarks/openset.py --write-calibration`` runs it on the dev split's images):
the people are split into random halves, several times with fixed seeds; each half in turn is
a gallery of one image per person and one image of each person of the other half is a
non-mated probe (:func:`subject_halves`). Every probe–template
pair is normalised exactly as a search normalises it (cohort: every template of that gallery,
up to ``cohort_max`` chosen by :func:`~faceledger.match.normalise.select_evenly`; statistics of
the ``top_k`` highest cohort scores) and is an impostor pair. The halves of the dev split hold
about ``cohort_size`` people, the size the rates are measured at. The pooled scores give the
measured curve; a generalised Pareto tail, fitted by probability-weighted moments to the
highest ``tail_fraction`` of them, extends it to the rates large galleries need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from faceledger.errors import CalibrationError, InvalidArgument
from faceledger.match.normalise import (
    Cohort,
    as_norm,
    candidate_stats,
    probe_stats,
    select_evenly,
)
from faceledger.models.calibration import FMRCurve, OpenSetCalibration, TailModel

NORMALISATION = "asnorm"
DEFAULT_COHORT_SIZE = 200
DEFAULT_COHORT_MAX = 5000
"""Cohort templates at most: a search's cost grows with it (5,000 x 128-d: ~0.3 ms a probe)."""
DEFAULT_TOP_K = 50
TAIL_FRACTION = 1e-3
MIN_EXCEEDANCES = 50


def fit_tail(
    scores: npt.ArrayLike,
    fraction: float = TAIL_FRACTION,
    min_exceedances: int = MIN_EXCEEDANCES,
) -> TailModel:
    """Generalised Pareto fit (Hosking & Wallis 1987 probability-weighted moments) to the
    scores above the empirical ``1 - fraction`` quantile (at least ``min_exceedances`` of them).
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    n = int(s.size)
    k = max(int(fraction * n), min_exceedances)
    if n <= k or k < min_exceedances:
        raise CalibrationError(
            f"{n} impostor scores are too few to fit a tail on {min_exceedances}+ exceedances"
        )
    u = float(s[k])
    y = np.sort(s[:k] - u)  # ascending exceedances
    p = (np.arange(1, k + 1) - 0.35) / k
    a0 = float(y.mean())
    a1 = float(np.mean((1.0 - p) * y))
    denom = a0 - 2.0 * a1
    if a0 <= 0.0 or denom <= 0.0:
        raise CalibrationError("degenerate impostor tail (ties at the top)")
    kappa = a0 / denom - 2.0  # Hosking's k = -shape
    scale = 2.0 * a0 * a1 / denom
    return TailModel(threshold=u, exceedance=k / n, shape=-kappa, scale=scale, exceedances=k)


@dataclass(frozen=True)
class Split:
    """One simulated search set: a gallery and non-mated probes (subjects must not overlap)."""

    gallery: npt.NDArray[np.float32]
    gallery_subjects: npt.NDArray[np.int64]
    probes: npt.NDArray[np.float32]
    probe_subjects: npt.NDArray[np.int64]


def impostor_scores(
    split: Split, cohort_size: int, top_k: int, cohort_max: int | None = None
) -> npt.NDArray[np.float64]:
    """Normalised scores of every probe against every gallery template of another subject
    (the gallery needs ``cohort_size`` templates; its cohort is all of them up to
    ``cohort_max``, default ``cohort_size``)."""
    g = np.asarray(split.gallery, dtype=np.float64)
    gs = np.asarray(split.gallery_subjects, dtype=np.int64)
    if g.shape[0] < cohort_size:
        raise InvalidArgument(
            f"a calibration gallery needs at least {cohort_size} templates, got {g.shape[0]}"
        )
    rows = select_evenly(np.arange(g.shape[0]), cohort_max or cohort_size)
    cohort = Cohort(g[rows].astype(np.float32), gs[rows])
    gm, gsd, _, _ = candidate_stats(g, gs, cohort, top_k)
    out: list[npt.NDArray[np.float64]] = []
    for vec, subj in zip(split.probes, split.probe_subjects, strict=True):
        keep = gs != subj
        pm, psd = probe_stats(vec, gs[keep], cohort, top_k)
        raw = g[keep] @ np.asarray(vec, dtype=np.float64)
        out.append(as_norm(raw, pm, psd, gm[keep], gsd[keep]))
    return np.concatenate(out) if out else np.zeros(0)


def subject_halves(
    vectors: npt.NDArray[np.float32],
    subjects: Sequence[int],
    seeds: Sequence[int] = tuple(range(8)),
) -> list[Split]:
    """Simulated searches: per seed, the people are split in random halves and each half in
    turn is the gallery, with one random image per person on both sides (a gallery of one
    image per person; every person weighs the same, however many images they have)."""
    subj = np.asarray(subjects, dtype=np.int64)
    names = np.unique(subj)
    rows = {int(n): np.flatnonzero(subj == n) for n in names}
    splits: list[Split] = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(names)
        halves = (perm[: names.size // 2], perm[names.size // 2 :])
        pick = {n: int(rng.choice(r)) for n, r in rows.items()}
        for gal, prb in (halves, halves[::-1]):
            gi = [pick[int(n)] for n in sorted(gal)]
            pi = [pick[int(n)] for n in sorted(prb)]
            splits.append(Split(vectors[gi], subj[gi], vectors[pi], subj[pi]))
    return splits


def calibrate_openset(
    splits: Sequence[Split],
    *,
    cohort_size: int = DEFAULT_COHORT_SIZE,
    top_k: int = DEFAULT_TOP_K,
    cohort_max: int = DEFAULT_COHORT_MAX,
    source: str = "",
) -> OpenSetCalibration:
    """Pool every split's normalised impostor scores into an :class:`OpenSetCalibration`."""
    if not 2 <= top_k < cohort_size <= cohort_max:
        raise InvalidArgument("need 2 <= top_k < cohort_size <= cohort_max")
    scores = np.concatenate([impostor_scores(s, cohort_size, top_k, cohort_max) for s in splits])
    sizes = sorted({s.gallery.shape[0] for s in splits})
    procedure = (
        f"AS-norm: z = ½[(s−μp)/σp + (s−μg)/σg] over the top {top_k} cosine similarities to "
        f"the gallery's own templates, all of them up to {cohort_max} (chosen evenly by id "
        f"beyond), candidate's subject left out; calibration galleries of "
        f"{sizes[0]}–{sizes[-1]} templates; "
        f"impostor pairs = non-mated probes × gallery templates over {len(splits)} simulated "
        f"searches (people in halves, one image each); generalised Pareto tail fitted by "
        f"probability-weighted moments above the top {TAIL_FRACTION:g} of scores"
    )
    return OpenSetCalibration(
        normalisation=NORMALISATION,
        cohort_size=cohort_size,
        cohort_max=cohort_max,
        top_k=top_k,
        curve=FMRCurve.from_scores(scores),
        tail=fit_tail(scores),
        source=source,
        procedure=procedure,
    )
