"""Adaptive symmetric score normalisation (AS-norm) of 1:N similarities against a cohort.

Raw cosine similarities are not comparable across probes or gallery templates: a blurred probe,
a child or a face from a group the model saw little of scores high against *everyone*. AS-norm
re-expresses a raw score ``s(p, g)`` by how far it stands out from each side's own impostors:

    z = ½ · [ (s − μ_p) / σ_p  +  (s − μ_g) / σ_g ]

where ``μ_p, σ_p`` are the mean and standard deviation of the probe's ``top_k`` highest
similarities to a cohort of templates (leaving out the candidate's subject) and ``μ_g, σ_g``
the same for the candidate template (leaving out its own subject). The cohort is the searched
galleries' own templates, all of them up to ``OpenSetCalibration.cohort_max`` and an evenly
spaced sample beyond (:func:`select_evenly`): each side is compared with its own nearest
impostors in the gallery it is searched in. A fixed 200-template cohort, the first design,
covered less of a growing gallery and lost most of its effect: FNIR at FPIR 0.01 0.102 against
0.043 for the whole gallery at 847 templates (benchmarks/README.md, "Cohort").

The price: the top ``top_k`` of a larger cohort are nearer impostors, so the distribution of
``z`` over impostor pairs moves down as the gallery grows, and a per-comparison calibration
measured at one size is conservative (declares more false matches than happen) at larger
ones. Galleries large enough count their own FPIR instead (``gallery.selfcal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument

FloatArray = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

MIN_STD = 1e-6
"""Floor on a cohort standard deviation (identical cohort scores would divide by zero)."""


@dataclass(frozen=True, eq=False)
class Cohort:
    """Cohort templates (rows, L2-normalised) and the subject each belongs to."""

    vectors: Vectors
    subjects: IdArray

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != self.subjects.shape[0]:
            raise InvalidArgument("cohort vectors and subjects differ in length")

    def __len__(self) -> int:
        return int(self.subjects.shape[0])


def select_evenly(ids: npt.ArrayLike, size: int) -> IdArray:
    """``size`` of ``ids`` (ascending) at evenly spaced positions: a deterministic sample that
    moves little as templates are added or removed. All of them when there are fewer."""
    arr = np.sort(np.asarray(ids, dtype=np.int64))
    if size < 1:
        raise InvalidArgument(f"cohort size must be >= 1, got {size}")
    n = int(arr.shape[0])
    if n <= size:
        return arr
    return arr[(np.arange(size, dtype=np.int64) * n) // size]


def top_k_stats(
    scores: npt.ArrayLike, k: int, exclude: npt.NDArray[np.bool_] | None = None
) -> tuple[FloatArray, FloatArray]:
    """Per row of ``scores`` (m, c): mean and (population) standard deviation of its ``k``
    highest entries, ignoring entries where ``exclude`` is True.

    A row with fewer than ``k`` usable entries uses those it has; one with fewer than two
    raises ``InvalidArgument`` (no spread to normalise by).
    """
    stats = _top_k(scores, k, exclude)
    return stats.mean, stats.std


class TopK(NamedTuple):
    """Per row: mean and spread of the top-k scores, the lowest of them (``floor``) and the
    next one below (``after``); -inf where a row has too few."""

    mean: FloatArray
    std: FloatArray
    floor: FloatArray
    after: FloatArray


def _top_k(scores: npt.ArrayLike, k: int, exclude: npt.NDArray[np.bool_] | None) -> TopK:
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if k < 2:
        raise InvalidArgument(f"top_k must be >= 2, got {k}")
    if exclude is not None:
        if exclude.shape != s.shape:
            raise InvalidArgument("exclusion mask and scores differ in shape")
        s = np.where(exclude, -np.inf, s)
    usable = np.isfinite(s).sum(axis=1)
    if s.shape[1] == 0 or int(usable.min(initial=s.shape[1])) < 2:
        raise InvalidArgument("a cohort needs at least two usable scores per row")
    kk = min(k, s.shape[1])
    if s.shape[1] > kk:
        part = -np.partition(-s, [kk - 1, kk], axis=1)
        after = part[:, kk]
    else:
        part = -np.partition(-s, kk - 1, axis=1)
        after = np.full(s.shape[0], -np.inf)
    top = part[:, :kk]
    n = np.minimum(usable, kk).astype(np.float64)
    finite = np.isfinite(top)
    vals = np.where(finite, top, 0.0)
    mean = vals.sum(axis=1) / n
    var = (np.where(finite, (top - mean[:, None]) ** 2, 0.0)).sum(axis=1) / n
    return TopK(mean, np.maximum(np.sqrt(var), MIN_STD), top.min(axis=1), after)


def drop_one(stats: TopK, k: int, removed: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mean and spread of each row's top k with one of its entries (``removed``, at or above
    the row's floor) taken out and the next one (``after``, finite) taken in: the update that
    spares a pass over the whole cohort when a single template leaves it."""
    x = np.asarray(removed, dtype=np.float64)
    mean = stats.mean + (stats.after - x) / k
    second = stats.std**2 + stats.mean**2 + (stats.after**2 - x**2) / k
    var = np.maximum(second - mean**2, 0.0)
    return mean, np.maximum(np.sqrt(var), MIN_STD)


def as_norm(
    raw: npt.ArrayLike,
    probe_mean: npt.ArrayLike,
    probe_std: npt.ArrayLike,
    cand_mean: npt.ArrayLike,
    cand_std: npt.ArrayLike,
) -> FloatArray:
    """½[(s − μ_p)/σ_p + (s − μ_g)/σ_g], element-wise (arrays broadcast)."""
    s = np.asarray(raw, dtype=np.float64)
    zp = (s - np.asarray(probe_mean)) / np.asarray(probe_std)
    zg = (s - np.asarray(cand_mean)) / np.asarray(cand_std)
    return np.asarray(0.5 * (zp + zg), dtype=np.float64)


def candidate_stats(
    candidates: npt.ArrayLike,
    candidate_subjects: npt.ArrayLike,
    cohort: Cohort,
    top_k: int,
    *,
    leave_out: int | None = None,
) -> TopK:
    """Each candidate template's top-k cohort statistics (:class:`TopK`), leaving out its own
    subject and ``leave_out``."""
    c = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    subj = np.asarray(candidate_subjects, dtype=np.int64).reshape(-1)
    excluded = subj[:, None] == cohort.subjects[None, :]
    if leave_out is not None:
        excluded |= (cohort.subjects == leave_out)[None, :]
    return _top_k(c @ cohort.vectors.astype(np.float64).T, top_k, excluded)


def probe_stats(
    probe: npt.ArrayLike,
    candidate_subjects: npt.ArrayLike,
    cohort: Cohort,
    top_k: int,
    *,
    leave_out: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """The probe's top-k cohort mean and spread, per candidate: its subject (and ``leave_out``,
    the probe's own subject where it sits in the cohort) left out.

    Only a subject among the probe's top-k cohort entries changes them, so the statistics are
    computed once and then again for each such subject.
    """
    p = np.asarray(probe, dtype=np.float64).reshape(-1)
    subj = np.asarray(candidate_subjects, dtype=np.int64).reshape(-1)
    scores = cohort.vectors.astype(np.float64) @ p
    owners_all = cohort.subjects
    if leave_out is not None:
        keep = owners_all != leave_out
        scores, owners_all = scores[keep], owners_all[keep]
    # the 2·top_k best suffice unless one subject holds more than top_k of them
    n = int(scores.shape[0])
    head_n = min(n, 2 * top_k)
    order = np.argpartition(-scores, head_n - 1)[:head_n] if n > head_n else np.arange(n)
    order = order[np.argsort(-scores[order], kind="stable")]
    ranked, owners = scores[order], owners_all[order]
    mean0, std0 = top_k_stats(ranked[None, :], top_k)
    mean = np.full(subj.shape[0], mean0[0])
    std = np.full(subj.shape[0], std0[0])
    changed = np.array(sorted(set(owners[:top_k].tolist()) & set(subj.tolist())), dtype=np.int64)
    if changed.size == 0:
        return mean, std
    # one row per such subject: the ranked head without it, its first top_k entries kept
    kept = owners[None, :] != changed[:, None]
    rows = np.where(kept & (np.cumsum(kept, axis=1) <= top_k), ranked[None, :], -np.inf)
    short = kept.sum(axis=1) < top_k
    if n > head_n and short.any():
        # a subject with more than top_k of the head: its row from every score
        for i in np.flatnonzero(short):
            rest = scores[owners_all != changed[i]]
            top = -np.partition(-rest, min(top_k, rest.shape[0]) - 1)[:top_k]
            rows[i] = -np.inf
            rows[i, : top.shape[0]] = top
    m, d = top_k_stats(rows, top_k)
    where = np.searchsorted(changed, subj)
    hit = (where < changed.size) & (changed[np.minimum(where, changed.size - 1)] == subj)
    mean[hit], std[hit] = m[where[hit]], d[where[hit]]
    return mean, std


def normalise(
    probe: npt.ArrayLike,
    candidates: npt.ArrayLike,
    candidate_subjects: npt.ArrayLike,
    cohort: Cohort,
    top_k: int,
) -> tuple[FloatArray, FloatArray]:
    """AS-norm scores of one probe against candidate templates (rows) → (normalised, raw).

    The probe's cohort statistics leave out each candidate's subject (so a mate sampled into
    the cohort does not hide itself); each candidate's leave out its own subject.
    """
    p = np.asarray(probe, dtype=np.float64).reshape(-1)
    c = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    subj = np.asarray(candidate_subjects, dtype=np.int64).reshape(-1)
    if c.shape[0] != subj.shape[0]:
        raise InvalidArgument("candidates and their subjects differ in length")
    if c.shape[0] == 0 or c.shape[1] == 0:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty
    if cohort.vectors.shape[1] != p.shape[0] or c.shape[1] != p.shape[0]:
        raise InvalidArgument("probe, candidates and cohort differ in dimension")
    raw = c @ p
    pm, ps = probe_stats(p, subj, cohort, top_k)
    g = candidate_stats(c, subj, cohort, top_k)
    return as_norm(raw, pm, ps, g.mean, g.std), raw
