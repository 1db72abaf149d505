"""Ranking a template against galleries: the shortlist, AS-normalisation, per-subject scores.

:func:`rank` is the one ranking behind ``search``, ``eval identify`` (``gallery.evaluation``)
and the gallery's own FPIR count (``gallery.selfcal``). A search cohort (the searched
galleries' templates, all of them up to the calibration's ``cohort_max``, an evenly spread
sample beyond) and the gallery-side statistics met so far are kept per index manager until the
galleries' templates change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from faceledger.errors import InvalidArgument
from faceledger.gallery.workspace import Workspace
from faceledger.index import VectorIndex
from faceledger.match.identify import normalisation_for
from faceledger.match.normalise import (
    Cohort,
    TopK,
    as_norm,
    candidate_stats,
    drop_one,
    probe_stats,
    select_evenly,
)
from faceledger.models.calibration import OpenSetCalibration
from faceledger.store import Gallery
from faceledger.types import Template

SHORTLIST_FACTOR = 8
"""Templates fetched per wanted candidate, so subjects with many templates still fill k."""


@dataclass(frozen=True)
class RankedSubject:
    gallery: Gallery
    subject_id: int
    template_id: int
    score: float
    similarity: float = float("nan")
    """Raw cosine similarity to ``template_id`` (``score`` is normalised when the ranking was)."""


@dataclass(frozen=True)
class Ranking:
    subjects: list[RankedSubject]
    normalisation: OpenSetCalibration | None
    templates: int


def rank(
    ws: Workspace,
    galleries: Sequence[Gallery],
    template: Template,
    k: int,
    *,
    exclude: tuple[int, int] | None = None,
) -> Ranking:
    """The best ``k`` subjects over ``galleries`` for one template, best first.

    A subject's score is its best template's score (``aggregation = max``) or the score of its
    L2-normalised mean template (``fused``; ``quality``: weighted by face quality); scores
    are AS-normalised when :func:`normalisation_for` says so, re-ranking the raw shortlist.
    Ties break by template id.
    ``exclude=(subject_id, templates)`` leaves one subject (holding that many templates) out
    of the candidates and of every cohort statistic: a member's search of the rest of its
    gallery, as if it had never been enrolled (``gallery.selfcal``).
    """
    excluded = None if exclude is None else [exclude]
    (ranking,) = rank_many(ws, galleries, [template], k, exclude=excluded)
    return ranking


def rank_many(
    ws: Workspace,
    galleries: Sequence[Gallery],
    templates: Sequence[Template],
    k: int,
    *,
    exclude: Sequence[tuple[int, int]] | None = None,
) -> list[Ranking]:
    """:func:`rank` for several templates, their shortlists fetched in one index search per
    gallery (a batch is far cheaper than single queries, for Milvus above all). With
    ``exclude`` (one per template), every shortlist is as long as the longest one needs."""
    if not templates:
        return []
    if exclude is not None and len(exclude) != len(templates):
        raise InvalidArgument("one exclusion per template")
    indexes = [(g, ws.indexes.get(g, templates[0].dimension)) for g in galleries]
    total = sum(len(idx) for _, idx in indexes)
    card = ws.engine_for(galleries[0]).card if galleries else ws.engine.card
    cal = normalisation_for(card, ws.settings.normalisation, total)
    left_out: list[int | None] = [None] * len(templates)
    extra = 0
    if exclude is not None:
        left_out = [s for s, _ in exclude]
        extra = max(n for _, n in exclude)
    queries = np.stack([t.vector for t in templates])
    hits: list[dict[int, tuple[Gallery, float]]] = [{} for _ in templates]
    for g, idx in indexes:
        if len(idx) == 0:
            continue
        found = idx.search(queries, min(len(idx), k * SHORTLIST_FACTOR + extra))
        for row, row_hits in enumerate(hits):
            for tid, score in found.row(row):
                row_hits[tid] = (g, score)
    return [
        _ranking(ws, indexes, cal, total, t, h, k, out)
        for t, h, out in zip(templates, hits, left_out, strict=True)
    ]


def _ranking(
    ws: Workspace,
    indexes: Sequence[tuple[Gallery, VectorIndex]],
    cal: OpenSetCalibration | None,
    total: int,
    template: Template,
    hits: dict[int, tuple[Gallery, float]],
    k: int,
    left_out: int | None,
) -> Ranking:
    """One template's shortlist → its ranked subjects (the scoring half of :func:`rank`)."""
    best: dict[tuple[int, int], RankedSubject] = {}
    if cal is None:
        infos = ws.store.get_templates(list(hits))
        for tid, (g, score) in hits.items():
            info = infos.get(tid)
            if info is None or info.info.subject_id == left_out:
                continue
            key = (g.id, info.info.subject_id)
            if key not in best or score > best[key].score:
                best[key] = RankedSubject(g, info.info.subject_id, tid, score, score)
        ranked = list(best.values())
        if ws.settings.aggregation != "max":
            ranked = [_fused(ws, r, template) for r in ranked]
    else:
        state = _cohort(ws, indexes, cal)
        _cache_candidates(ws, state, list(hits), cal.top_k)
        tids = [t for t in hits if t in state.templates and state.templates[t][0] != left_out]
        if tids:
            known = np.array([state.templates[t] for t in tids], dtype=np.float64)
            subjects = known[:, 0].astype(np.int64)
            raw = np.array([hits[t][1] for t in tids], dtype=np.float64)
            pm, ps = probe_stats(
                template.vector, subjects, state.cohort, cal.top_k, leave_out=left_out
            )
            gm, gs = known[:, 1], known[:, 2]
            if left_out is not None:
                gm, gs = _without_subject(ws, state, tids, known, left_out, cal.top_k)
            z = as_norm(raw, pm, ps, gm, gs)
            for i, tid in enumerate(tids):
                g = hits[tid][0]
                key = (g.id, int(subjects[i]))
                if key not in best or z[i] > best[key].score:
                    best[key] = RankedSubject(g, int(subjects[i]), tid, float(z[i]), float(raw[i]))
        ranked = list(best.values())
        if ws.settings.aggregation != "max":
            ranked = _fused_normalised(ws, ranked, template, state, cal.top_k, left_out)
    ranked.sort(key=lambda r: (-r.score, r.template_id))
    return Ranking(ranked[:k], cal, total)


def _cache_candidates(ws: Workspace, state: _CohortState, tids: list[int], top_k: int) -> None:
    """Gallery-side statistics of the templates not met before (kept with the cohort)."""
    missing = [t for t in tids if t not in state.templates]
    if not missing:
        return
    fresh, subs, vecs = state.lookup(ws, missing)
    if fresh:
        st = candidate_stats(vecs, subs, state.cohort, top_k)
        for i, t in enumerate(fresh):
            state.templates[t] = (
                int(subs[i]),
                float(st.mean[i]),
                float(st.std[i]),
                float(st.floor[i]),
                float(st.after[i]),
            )


def _without_subject(
    ws: Workspace,
    state: _CohortState,
    tids: list[int],
    known: npt.NDArray[np.float64],
    left_out: int,
    top_k: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Candidates' cohort statistics with ``left_out``'s templates out of the cohort.

    Only a candidate with one of them among its top-k cohort scores (at or above its floor)
    changes. With one such template, the next score takes its place (:func:`drop_one`); with
    more, the candidate's statistics are computed again over the cohort.
    """
    gm, gs = known[:, 1].copy(), known[:, 2].copy()
    own = state.cohort.subjects == left_out
    if not own.any():
        return gm, gs
    _, _, vecs = state.lookup(ws, tids)
    scores = vecs @ state.cohort.vectors[own].astype(np.float64).T
    inside = scores >= known[:, 3:4]
    count = inside.sum(axis=1)
    single = (count == 1) & np.isfinite(known[:, 4])
    one = np.flatnonzero(single)
    if one.size:
        stats = TopK(known[one, 1], known[one, 2], known[one, 3], known[one, 4])
        removed = np.where(inside[one], scores[one], -np.inf).max(axis=1)
        gm[one], gs[one] = drop_one(stats, top_k, removed)
    many = np.flatnonzero((count > 0) & ~single)
    if many.size:
        st = candidate_stats(
            vecs[many], known[many, 0].astype(np.int64), state.cohort, top_k, leave_out=left_out
        )
        gm[many], gs[many] = st.mean, st.std
    return gm, gs


def _mean_template(ws: Workspace, subject_id: int) -> npt.NDArray[np.float64]:
    """The subject's L2-normalised mean template; with ``aggregation = "quality"`` each
    template weighs its face quality score (templates without one weigh the median of the
    others, or all equally)."""
    infos = ws.store.list_templates(subject_id)
    stored = ws.store.get_templates([t.id for t in infos])
    vecs = np.stack([stored[t.id].vector for t in infos]).astype(np.float64)
    weights = np.ones(len(infos))
    if ws.settings.aggregation == "quality":
        weights = quality_weights([t.quality_score for t in infos])
    mean = (weights[:, None] * vecs).sum(axis=0)
    return np.asarray(mean / (np.linalg.norm(mean) or 1.0), dtype=np.float64)


def quality_weights(scores: Sequence[float | None]) -> npt.NDArray[np.float64]:
    """Fusion weights from quality scores (0-100): proportional to the score, floored at 1 so
    that no template is silenced; unknown scores take the median known one."""
    known = [float(q) for q in scores if q is not None and np.isfinite(q)]
    fill = float(np.median(known)) if known else 1.0
    w = np.array([fill if q is None or not np.isfinite(q) else float(q) for q in scores])
    return np.asarray(np.maximum(w, 1.0), dtype=np.float64)


def _fused(ws: Workspace, r: RankedSubject, probe: Template) -> RankedSubject:
    mean = _mean_template(ws, r.subject_id)
    raw = float(mean @ probe.vector)
    return RankedSubject(r.gallery, r.subject_id, r.template_id, raw, raw)


def _fused_normalised(
    ws: Workspace,
    ranked: list[RankedSubject],
    probe: Template,
    state: _CohortState,
    top_k: int,
    left_out: int | None = None,
) -> list[RankedSubject]:
    """Shortlisted subjects re-scored by their mean template, AS-normalised (each subject's
    mean template and its cohort statistics are kept with the cohort state; with
    ``left_out``, statistics without that subject's cohort templates are computed afresh)."""
    for r in ranked:
        if r.subject_id not in state.fused:
            mean = _mean_template(ws, r.subject_id)
            st = candidate_stats(mean[None, :], [r.subject_id], state.cohort, top_k)
            state.fused[r.subject_id] = (mean, float(st.mean[0]), float(st.std[0]))
    if not ranked:
        return ranked
    subjects = np.array([r.subject_id for r in ranked], dtype=np.int64)
    means = np.stack([state.fused[r.subject_id][0] for r in ranked])
    raw = means @ probe.vector.astype(np.float64)
    pm, ps = probe_stats(probe.vector, subjects, state.cohort, top_k, leave_out=left_out)
    if left_out is None:
        gm = np.array([state.fused[r.subject_id][1] for r in ranked])
        gs = np.array([state.fused[r.subject_id][2] for r in ranked])
    else:
        gm, gs, _, _ = candidate_stats(means, subjects, state.cohort, top_k, leave_out=left_out)
    z = as_norm(raw, pm, ps, gm, gs)
    return [
        RankedSubject(r.gallery, r.subject_id, r.template_id, float(z[i]), float(raw[i]))
        for i, r in enumerate(ranked)
    ]


@dataclass
class _CohortState:
    """A search cohort and, per gallery template met so far, (subject, top-k mean, spread,
    lowest top-k score, the next score below it)."""

    cohort: Cohort
    templates: dict[int, tuple[int, float, float, float, float]]
    fused: dict[int, tuple[npt.NDArray[np.float64], float, float]] = field(default_factory=dict)
    """Per subject: its mean template and that template's cohort statistics."""
    rows: dict[int, int] = field(default_factory=dict)
    """Template id → its row in the cohort (every template, up to ``cohort_max``)."""

    def lookup(
        self, ws: Workspace, tids: Sequence[int]
    ) -> tuple[list[int], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Of ``tids`` (in order), those that exist, with their subjects and vectors: read
        from the cohort where it holds them (every template, up to ``cohort_max``), else
        from the store."""
        away = [t for t in tids if t not in self.rows]
        stored = ws.store.get_templates(away) if away else {}
        found: list[int] = []
        subs: list[int] = []
        vecs: list[npt.NDArray[np.float32]] = []
        for t in tids:
            if t in self.rows:
                subs.append(int(self.cohort.subjects[self.rows[t]]))
                vecs.append(self.cohort.vectors[self.rows[t]])
            elif t in stored:
                subs.append(stored[t].info.subject_id)
                vecs.append(stored[t].vector)
            else:
                continue
            found.append(t)
        dim = self.cohort.vectors.shape[1]
        return (
            found,
            np.array(subs, dtype=np.int64),
            np.stack(vecs).astype(np.float64) if vecs else np.zeros((0, dim)),
        )


def _cohort(
    ws: Workspace, indexes: Sequence[tuple[Gallery, VectorIndex]], cal: OpenSetCalibration
) -> _CohortState:
    """The searched galleries' templates, all of them up to ``cal.cohort_max`` (chosen evenly
    by id beyond). The state (with the gallery-side statistics computed so far) is kept until
    the galleries' template ids change in any way: an enrolment or erasure starts a new one."""
    all_ids = [idx.ids() for _, idx in indexes]
    ids = np.concatenate(all_ids) if all_ids else np.zeros(0, dtype=np.int64)
    chosen = select_evenly(ids, cal.cohort_max)
    digest = hashlib.sha256(np.sort(ids).tobytes() + str(cal.cohort_max).encode()).digest()
    key = tuple(sorted(g.id for g, _ in indexes))
    cache = ws.indexes.cohorts
    cached = cache.get(key)
    if cached is not None and cached[0] == digest:
        state: _CohortState = cached[1]
        return state
    found = ws.store.get_templates([int(i) for i in chosen])
    kept = [int(i) for i in chosen if int(i) in found]
    cohort = Cohort(
        np.stack([found[i].vector for i in kept]).astype(np.float32),
        np.array([found[i].info.subject_id for i in kept], dtype=np.int64),
    )
    state = _CohortState(cohort, {}, {}, {t: row for row, t in enumerate(kept)})
    cache[key] = (digest, state)
    return state
