"""False-match rate by group from every cross-image pair of a set of different people.

NIST IR 8280 found impostor scores, and so false-match rates, depend on the demographics of
*both* sides: same-group impostor pairs match falsely far more often than cross-group ones.
This measures that on a labelled set (e.g. ``utkface_subset/labels.csv``), one label column
at a time plus their combination. Images without a template are left out (and counted): an
impostor pair that cannot be compared can be no evidence about false matches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.batch import EmbedOutcome
from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.evaluate.intervals import Interval, clopper_pearson
from faceledger.evaluate.jsonio import interval, number
from faceledger.evaluate.metrics import (
    FMR_TARGETS,
    Differential,
    Scores,
    differential,
    error_curve,
    rate_key,
    threshold_at_fmr,
)
from faceledger.evaluate.protocols import LabelSet
from faceledger.evaluate.templates import ImageTemplates, embed_images

SCHEMA = "faceledger.eval.impostors/1"
COMBINED_SEPARATOR = "/"


@dataclass(frozen=True)
class ImpostorGroup:
    images: int
    pairs: int
    false_matches: int
    fmr_ci: Interval | None
    fmr_at_targets: dict[float, float | None]
    """FMR of this group's pairs at the thresholds giving each target FMR on all pairs."""
    score_mean: float | None
    score_p99: float | None

    @property
    def fmr(self) -> float | None:
        return self.false_matches / self.pairs if self.pairs else None


@dataclass(frozen=True)
class ColumnReport:
    column: str
    groups: dict[str, ImpostorGroup]
    """Same-group pairs: both people carry this label."""
    cross_group: ImpostorGroup
    matrix: dict[str, dict[str, float | None]]
    """FMR at the operating threshold for pairs (row label, column label), symmetric."""
    differential: Differential
    scores_by_group: dict[str, Scores]
    cross_scores: Scores


@dataclass(frozen=True)
class ImpostorsEvaluation:
    labels: LabelSet
    model_id: str
    images_used: int
    image_failures: dict[str, int]
    scores: Scores
    thresholds: dict[float, float | None]
    threshold: float
    threshold_rule: str
    columns: dict[str, ColumnReport]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "labels": str(self.labels.source),
            "model_id": self.model_id,
            "images": len(self.labels.images),
            "images_used": self.images_used,
            "images_failed": self.image_failures,
            "impostor": int(self.scores.size),
            "fmr_thresholds": {rate_key(t): number(v) for t, v in self.thresholds.items()},
            "threshold": {"value": number(self.threshold), "rule": self.threshold_rule},
            "fmr": number(float(np.mean(self.scores >= self.threshold))),
            "columns": {name: column_json(c) for name, c in self.columns.items()},
        }


def group_json(g: ImpostorGroup) -> dict[str, Any]:
    return {
        "images": g.images,
        "pairs": g.pairs,
        "fmr": number(g.fmr),
        "fmr_ci": interval(g.fmr_ci),
        "false_matches": g.false_matches,
        "fmr_at": {rate_key(t): number(v) for t, v in g.fmr_at_targets.items()},
        "score_mean": number(g.score_mean),
        "score_p99": number(g.score_p99),
    }


def column_json(c: ColumnReport) -> dict[str, Any]:
    d = c.differential
    same_pairs = sum(g.pairs for g in c.groups.values())
    same_fm = sum(g.false_matches for g in c.groups.values())
    same_fmr = same_fm / same_pairs if same_pairs else None
    cross_fmr = c.cross_group.fmr
    return {
        "groups": {k: group_json(v) for k, v in c.groups.items()},
        "cross_group": group_json(c.cross_group),
        "same_group_fmr": number(same_fmr),
        "same_to_cross_ratio": (
            number(same_fmr / cross_fmr) if same_fmr is not None and cross_fmr else None
        ),
        "matrix": {r: {k: number(v) for k, v in row.items()} for r, row in c.matrix.items()},
        "differential": {
            "ratio": number(d.ratio),
            "max_group": d.max_group,
            "max_rate": number(d.max_rate),
            "min_group": d.min_group,
            "min_rate": number(d.min_rate),
        },
    }


def _group(
    scores: Scores, images: int, threshold: float, thresholds: dict[float, float | None]
) -> ImpostorGroup:
    fm = int(np.count_nonzero(scores >= threshold))
    n = int(scores.size)
    return ImpostorGroup(
        images=images,
        pairs=n,
        false_matches=fm,
        fmr_ci=clopper_pearson(fm, n) if n else None,
        fmr_at_targets={
            f: (float(np.count_nonzero(scores >= t)) / n if n and t is not None else None)
            for f, t in thresholds.items()
        },
        score_mean=float(scores.mean()) if n else None,
        score_p99=float(np.quantile(scores, 0.99)) if n else None,
    )


def column_report(
    column: str,
    labels: Sequence[str],
    scores: Scores,
    ia: npt.NDArray[np.intp],
    ib: npt.NDArray[np.intp],
    threshold: float,
    thresholds: dict[float, float | None],
) -> ColumnReport:
    """Per-label FMR of pairs ``(ia[k], ib[k])`` with score ``scores[k]``; empty labels skipped.

    Labels are turned into integer codes (-1: unlabelled) so every count is one pass of
    ``bincount`` over the pairs, whatever the number of groups.
    """
    names = sorted({x for x in labels if x})
    index = {n: k for k, n in enumerate(names)}
    codes = np.array([index.get(x, -1) for x in labels], dtype=np.int64)
    ca, cb = codes[ia], codes[ib]
    labelled = (ca >= 0) & (cb >= 0)
    same = labelled & (ca == cb)
    g = len(names)
    counts = np.bincount(codes[codes >= 0], minlength=g)
    # each unordered pair of labels once: (low, high) -> low * g + high
    lo, hi = np.minimum(ca, cb)[labelled], np.maximum(ca, cb)[labelled]
    cell = lo * g + hi
    hits = (scores >= threshold)[labelled]
    totals = np.bincount(cell, minlength=g * g)
    matches = np.bincount(cell, weights=hits, minlength=g * g)
    matrix: dict[str, dict[str, float | None]] = {n: {} for n in names}
    for x in range(g):
        for y in range(g):
            c = min(x, y) * g + max(x, y)
            matrix[names[x]][names[y]] = float(matches[c] / totals[c]) if totals[c] else None
    order = np.argsort(ca[same], kind="stable")
    same_scores = scores[same][order]
    bounds = np.searchsorted(ca[same][order], np.arange(g + 1))
    by_group = {n: same_scores[bounds[k] : bounds[k + 1]] for k, n in enumerate(names)}
    groups = {
        n: _group(by_group[n], int(counts[k]), threshold, thresholds) for k, n in enumerate(names)
    }
    cross = scores[labelled & ~same]
    return ColumnReport(
        column=column,
        groups=groups,
        cross_group=_group(cross, int(counts.sum()), threshold, thresholds),
        matrix=matrix,
        differential=differential({k: v.fmr for k, v in groups.items()}),
        scores_by_group=by_group,
        cross_scores=cross,
    )


NUMERIC_BANDS: tuple[tuple[float, str], ...] = (
    (10, "0-9"),
    (20, "10-19"),
    (35, "20-34"),
    (50, "35-49"),
    (65, "50-64"),
    (float("inf"), "65+"),
)
"""Bands for a numeric column asked for as a group (meant for age in years)."""


def _numeric(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def is_numeric_column(labels: LabelSet, column: str) -> bool:
    values = [i.labels[column] for i in labels.images if i.labels[column]]
    return bool(values) and all(_numeric(v) for v in values)


def band(value: str) -> str:
    """The band label of a numeric value (empty stays empty: unlabelled)."""
    if not value:
        return ""
    x = float(value)
    return next(name for upper, name in NUMERIC_BANDS if x < upper)


def default_group_columns(labels: LabelSet) -> list[str]:
    """Label columns that are not purely numeric (``age`` is left out, ``race`` kept)."""
    return [c for c in labels.columns if not is_numeric_column(labels, c)]


def evaluate_impostors(
    labels: LabelSet,
    templates: ImageTemplates,
    *,
    group_columns: Sequence[str] | None = None,
    target_fmr: float = 1e-3,
    threshold: float | None = None,
    targets: Sequence[float] = FMR_TARGETS,
) -> ImpostorsEvaluation:
    columns = list(group_columns) if group_columns else default_group_columns(labels)
    for c in columns:
        if c not in labels.columns:
            raise InvalidArgument(
                f"{labels.source} has no column {c!r} (columns: {', '.join(labels.columns)})"
            )
    paths = [i.image for i in labels.images]
    vecs, keep = templates.stack(paths)
    if len(keep) < 2:
        raise InvalidArgument("fewer than two images yielded a template: no impostor pairs")
    ia, ib = np.triu_indices(len(keep), k=1)
    sims = (vecs.astype(np.float64) @ vecs.astype(np.float64).T)[ia, ib]
    curve = error_curve(np.zeros(0), sims)
    thresholds = {f: threshold_at_fmr(curve, f) for f in targets}
    if threshold is not None:
        t, rule = threshold, "given"
    else:
        chosen = threshold_at_fmr(curve, target_fmr)
        if chosen is None:
            raise InvalidArgument(
                f"{sims.size} impostor pairs cannot measure FMR {target_fmr:g}; "
                "choose a larger target or give a threshold"
            )
        t, rule = chosen, f"fmr<={rate_key(target_fmr)}"
    kept = [labels.images[k] for k in keep]
    # numeric columns asked for explicitly (e.g. age) are grouped in bands
    values = {
        c: [band(i.labels[c]) for i in kept]
        if is_numeric_column(labels, c)
        else [i.labels[c] for i in kept]
        for c in columns
    }
    reports: dict[str, ColumnReport] = {}
    for c in columns:
        reports[c] = column_report(c, values[c], sims, ia, ib, t, thresholds)
    if len(columns) >= 2:
        name = "+".join(columns)
        combined = [
            COMBINED_SEPARATOR.join(values[c][k] for c in columns)
            if all(values[c][k] for c in columns)
            else ""
            for k in range(len(kept))
        ]
        reports[name] = column_report(name, combined, sims, ia, ib, t, thresholds)
    return ImpostorsEvaluation(
        labels=labels,
        model_id=templates.model_id,
        images_used=len(keep),
        image_failures=templates.failure_counts(paths),
        scores=sims,
        thresholds=thresholds,
        threshold=t,
        threshold_rule=rule,
        columns=reports,
    )


def run_impostors(
    labels: LabelSet,
    settings: Settings,
    *,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    cache: TemplateCache | None = None,
    group_columns: Sequence[str] | None = None,
    target_fmr: float | None = None,
    threshold: float | None = None,
) -> ImpostorsEvaluation:
    templates = embed_images(
        [i.image for i in labels.images], settings, workers=workers, on_done=on_done, cache=cache
    )
    return evaluate_impostors(
        labels,
        templates,
        group_columns=group_columns,
        target_fmr=target_fmr if target_fmr is not None else settings.default_fmr,
        threshold=threshold,
    )
