"""Adaptive symmetric score normalisation (AS-norm) of 1:N similarities against a cohort.

Raw cosine similarities are not comparable across probes or gallery templates: a blurred probe,
a child or a face from a group the model saw little of scores high against *everyone*. AS-norm
re-expresses a raw score ``s(p, g)`` by how far it stands out from each side's own impostors:

    z = ½ · [ (s − μ_p) / σ_p  +  (s − μ_g) / σ_g ]

where ``μ_p, σ_p`` are the mean and standard deviation of the probe's ``top_k`` highest
similarities to a cohort of templates (leaving out the candidate's subject) and ``μ_g, σ_g``
the same for the candidate template (leaving out its own subject). The cohort is a fixed-size,
evenly spaced sample of the searched galleries' own templates (:func:`select_evenly`): it
follows the gallery's population, and because its size does not grow with the gallery the
distribution of ``z`` over impostor pairs does not either, so one per-comparison calibration
(``models.calibration.OpenSetCalibration``) holds at every gallery size.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    top = -np.partition(-s, kk - 1, axis=1)[:, :kk]
    n = np.minimum(usable, kk).astype(np.float64)
    finite = np.isfinite(top)
    vals = np.where(finite, top, 0.0)
    mean = vals.sum(axis=1) / n
    var = (np.where(finite, (top - mean[:, None]) ** 2, 0.0)).sum(axis=1) / n
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
    candidates: npt.ArrayLike, candidate_subjects: npt.ArrayLike, cohort: Cohort, top_k: int
) -> tuple[FloatArray, FloatArray]:
    """Each candidate template's top-k cohort mean and spread, leaving out its own subject."""
    c = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    subj = np.asarray(candidate_subjects, dtype=np.int64).reshape(-1)
    same = subj[:, None] == cohort.subjects[None, :]
    return top_k_stats(c @ cohort.vectors.astype(np.float64).T, top_k, same)


def probe_stats(
    probe: npt.ArrayLike, candidate_subjects: npt.ArrayLike, cohort: Cohort, top_k: int
) -> tuple[FloatArray, FloatArray]:
    """The probe's top-k cohort mean and spread, per candidate: its subject left out.

    Only a subject among the probe's top-k cohort entries changes them, so the statistics are
    computed once and then again for each such subject.
    """
    p = np.asarray(probe, dtype=np.float64).reshape(-1)
    subj = np.asarray(candidate_subjects, dtype=np.int64).reshape(-1)
    scores = cohort.vectors.astype(np.float64) @ p
    order = np.argsort(-scores, kind="stable")
    ranked, owners = scores[order], cohort.subjects[order]
    mean0, std0 = top_k_stats(ranked[None, :], top_k)
    mean = np.full(subj.shape[0], mean0[0])
    std = np.full(subj.shape[0], std0[0])
    for s in set(owners[:top_k].tolist()) & set(subj.tolist()):
        m, d = top_k_stats(ranked[owners != s][None, :], top_k)
        mean[subj == s], std[subj == s] = m[0], d[0]
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
    gm, gs = candidate_stats(c, subj, cohort, top_k)
    return as_norm(raw, pm, ps, gm, gs), raw
