"""Leave-one-subject-out searches of a gallery: its own FPIR, counted (see
``match.gallery_calibration``).

A sample of members (one template per subject, evenly spread over template ids) is each
ranked with :func:`faceledger.gallery.ranking.rank_many` — the ranking ``search`` uses, in
batches — with its own subject left out of the candidates *and* of every normalisation
statistic: the search a non-enrolled person's face gets. Their best scores form a
:class:`GalleryCalibration`.

Leaving the member out of the statistics matters: the cohort is the gallery itself, so the
member's face sits in the cohort statistics of its nearest impostors (the very pairs that
decide the count) and pulls those scores down. Left in, an earlier 200-template cohort
measured declared FPIR 0.1 as 0.122 and 0.05 as 0.070 (``benchmarks/openset.py --selfcal``).

The result is kept per index manager and set of galleries, and in
``<data_dir>/selfcal/<model>-<gallery ids>.npz`` for later processes, and reused while the
galleries' template count stays within :data:`REUSE_DRIFT` of the count it was measured at
(the rule rescales a measured FPIR to the current size); beyond that it is measured again.
Only sorted best scores are kept: no template, id or name, nothing that identifies a person.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceledger.errors import InvalidArgument
from faceledger.gallery.ranking import rank_many
from faceledger.gallery.workspace import Workspace
from faceledger.index import VectorIndex
from faceledger.match.gallery_calibration import (
    MAX_SAMPLES,
    MIN_EVENTS,
    GalleryCalibration,
    rescaled_fpir,
)
from faceledger.match.identify import normalisation_for
from faceledger.match.normalise import select_evenly
from faceledger.models.calibration import OpenSetCalibration
from faceledger.store import Gallery
from faceledger.types import Template

log = logging.getLogger(__name__)

BATCH = 256
"""Members searched per index call."""

REUSE_DRIFT = 0.02
"""Relative change in template count up to which a measured calibration is reused."""

LOOSEST_FPIR = 0.1
"""The highest FPIR a count is made for: a gallery too small to count it is never counted."""

COUNT_VERSION = 2
"""Version of the counting procedure a saved count was made by; another version's is counted
again (version 2: the whole gallery as cohort, the member left out of its statistics)."""


@dataclass(frozen=True)
class _Cached:
    templates: int
    calibration: GalleryCalibration | None


def gallery_calibration(
    ws: Workspace, galleries: Sequence[Gallery], fpir: float
) -> GalleryCalibration | None:
    """The galleries' own calibration, or None when they hold too few subjects to count
    ``fpir`` (or ``Settings.fpir_calibration`` is ``card``)."""
    if ws.settings.fpir_calibration == "card" or not galleries:
        return None
    card = ws.engine_for(galleries[0]).card
    indexes = [(g, ws.indexes.get(g, card.dimension)) for g in galleries]
    total = sum(len(idx) for _, idx in indexes)
    # cheap refusals first: even a search of every template, then of every subject, could
    # not count this rate (the first needs no database query: most galleries stop there)
    if min(total, MAX_SAMPLES) * rescaled_fpir(fpir, total, total) < MIN_EVENTS:
        return None
    cal = normalisation_for(card, ws.settings.normalisation, total)
    mode = "none" if cal is None else cal.normalisation
    key = tuple(sorted(g.id for g in galleries))
    cache: dict[tuple[int, ...], _Cached] = ws.indexes.fpir_counts
    file = ws.settings.data_dir / "selfcal" / f"{card.id}-{'-'.join(map(str, key))}.npz"
    hit = cache.get(key) or _load(file)
    if hit is not None and _reusable(hit, total, mode):
        # the caller asks the count whether it supports ``fpir`` (GalleryCalibration.supports)
        cache[key] = hit
        return hit.calibration
    # counting the subjects is a query over the whole gallery: only before a measurement
    subjects = sum(ws.store.counts(g.id).subjects for g in galleries)
    if min(subjects, MAX_SAMPLES) * fpir < MIN_EVENTS:
        return None
    measured = _measure(ws, galleries, indexes, total, cal)
    cache[key] = _Cached(total, measured)
    if measured is not None:
        _save(file, measured)
    return measured


def precount(ws: Workspace, gallery: Gallery) -> GalleryCalibration | None:
    """Count ``gallery``'s own FPIR now (after a bulk enrolment, say), so that its next search
    finds the count ready instead of making it; None where the gallery is too small to count."""
    return gallery_calibration(ws, [gallery], LOOSEST_FPIR)


def _reusable(hit: _Cached, total: int, mode: str) -> bool:
    if hit.calibration is not None and hit.calibration.normalisation != mode:
        return False
    return abs(total - hit.templates) <= REUSE_DRIFT * max(hit.templates, 1)


def _save(file: Path, cal: GalleryCalibration) -> None:
    """Keep the count for the next process (a CLI search would otherwise redo it): sorted
    scores only, written whole or not at all. A folder that cannot be written only costs
    the next process a recount, so it does not fail the search."""
    tmp = file.with_suffix(".tmp.npz")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            tmp,
            top_scores=cal.top_scores,
            templates=np.int64(cal.templates),
            normalisation=np.str_(cal.normalisation),
            version=np.int64(COUNT_VERSION),
        )
        os.replace(tmp, file)
    except OSError as exc:
        log.warning("gallery FPIR count not saved to %s: %s", file, exc)


def _load(file: Path) -> _Cached | None:
    """A count saved by an earlier process, or None (absent or unreadable: measured again)."""
    try:
        with np.load(file, allow_pickle=False) as z:
            if "version" not in z or int(z["version"]) != COUNT_VERSION:
                return None
            cal = GalleryCalibration(
                np.asarray(z["top_scores"], dtype=np.float64),
                int(z["templates"]),
                str(z["normalisation"]),
            )
    except (OSError, ValueError, KeyError, InvalidArgument):
        return None
    return _Cached(cal.templates, cal)


def _measure(
    ws: Workspace,
    galleries: Sequence[Gallery],
    indexes: Sequence[tuple[Gallery, VectorIndex]],
    total: int,
    cal: OpenSetCalibration | None,
) -> GalleryCalibration | None:
    ids = np.concatenate([idx.ids() for _, idx in indexes])
    # oversample template ids evenly, then keep one template per subject
    picked = select_evenly(ids, min(ids.size, 2 * MAX_SAMPLES))
    stored = ws.store.get_templates([int(i) for i in picked])
    members: dict[int, int] = {}
    for tid in sorted(stored):
        members.setdefault(stored[tid].info.subject_id, tid)
    chosen = list(members.items())
    if len(chosen) > MAX_SAMPLES:
        keep = select_evenly(np.arange(len(chosen)), MAX_SAMPLES)
        chosen = [chosen[int(i)] for i in keep]
    model = galleries[0].model_id
    counts = ws.store.template_counts(s for s, _ in chosen)
    tops: list[float] = []
    for start in range(0, len(chosen), BATCH):
        batch = chosen[start : start + BATCH]
        probes = [Template(model, np.asarray(stored[t].vector, np.float32)) for _, t in batch]
        own = [(s, counts[s]) for s, _ in batch]
        # the shortlist a search fetches (k = top_k): a best normalised score can come from
        # beyond the raw top few, and a shorter shortlist would miss it and undercount
        for ranking in rank_many(ws, galleries, probes, ws.settings.top_k, exclude=own):
            if ranking.subjects:
                tops.append(ranking.subjects[0].score)
    if len(tops) < MIN_EVENTS:
        return None
    mode = "none" if cal is None else cal.normalisation
    return GalleryCalibration(np.asarray(tops, dtype=np.float64), total, mode)
