"""Open-set 1:N evaluation of a gallery/probes protocol through an injected search function.

The search is a seam: :func:`exact_search` (brute-force cosine, best image per subject) is the
reference; the gallery's own search path can be passed instead so that ``eval identify`` and
``search`` measure one code path. A probe whose subject is not in the gallery CSV is
non-mated. A mated probe whose subject has no usable gallery image stays mated (and is missed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from faceledger.batch import EmbedOutcome
from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.evaluate.jsonio import interval, number
from faceledger.evaluate.metrics import NotMeasurable, rate_key
from faceledger.evaluate.openset import (
    CMC_RANKS,
    FPIR_TARGETS,
    Candidate,
    IdentOperatingPoint,
    ProbeSearch,
    cmc,
    fnir_at_fpir,
    rates_at_threshold,
    threshold_at_fpir,
)
from faceledger.evaluate.protocols import ImageList
from faceledger.evaluate.templates import ImageTemplates, Vectors, embed_images

SCHEMA = "faceledger.eval.identify/1"


class SearchFn(Protocol):
    """Ranked 1:N search of every probe against a gallery.

    Returns one list per probe row: at most ``k`` candidates ``(subject, score)``, one per
    subject, best (highest similarity) first. Called once per evaluation with all probes, so
    an implementation may build an index or normalisation statistics from the gallery first.
    ``gallery_quality`` is each gallery template's face quality score (0-100), where known.
    """

    def __call__(
        self,
        gallery_vectors: Vectors,
        gallery_subjects: Sequence[str],
        probe_vectors: Vectors,
        k: int,
        /,
        *,
        gallery_quality: Sequence[float | None] | None = None,
    ) -> list[list[Candidate]]: ...


def exact_search(
    gallery_vectors: Vectors,
    gallery_subjects: Sequence[str],
    probe_vectors: Vectors,
    k: int,
    *,
    gallery_quality: Sequence[float | None] | None = None,
    chunk: int = 1024,
) -> list[list[Candidate]]:
    """Brute-force cosine search; a subject's score is its best image (quality is not used).
    Ties: subject id order."""
    if gallery_vectors.shape[0] != len(gallery_subjects):
        raise InvalidArgument("gallery vectors and subjects differ in length")
    if k < 1:
        raise InvalidArgument(f"k must be >= 1, got {k}")
    names = sorted(set(gallery_subjects))
    if not names or probe_vectors.shape[0] == 0:
        return [[] for _ in range(probe_vectors.shape[0])]
    col = {s: i for i, s in enumerate(names)}
    codes = np.array([col[s] for s in gallery_subjects])
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    g = gallery_vectors[order].astype(np.float32)
    kk = min(k, len(names))
    out: list[list[Candidate]] = []
    for lo in range(0, probe_vectors.shape[0], chunk):
        sims = probe_vectors[lo : lo + chunk].astype(np.float32) @ g.T
        per_subject = np.maximum.reduceat(sims, starts, axis=1)
        ranked = np.argsort(-per_subject, axis=1, kind="stable")[:, :kk]
        for row, idx in zip(per_subject, ranked, strict=True):
            out.append([(names[j], float(row[j])) for j in idx])
    return out


@dataclass(frozen=True)
class DeclaredThreshold:
    """The threshold a search path declares for a target FPIR (what it applies in production)."""

    target_fpir: float
    threshold: float
    normalisation: str
    extrapolated: bool
    """True when the threshold comes from the fitted tail beyond the calibration's own data."""
    source: str = "model card"
    """``model card`` (its calibration) or ``gallery`` (counted on the gallery's own members)."""


DeclareFn = Callable[[float], DeclaredThreshold]
"""Declared threshold for a target FPIR over the gallery the search function last searched."""

DECLARED_TARGETS = (0.1, 0.01)


@dataclass(frozen=True)
class DeclaredPoint:
    """A declared threshold and the FPIR/FNIR measured at it: the calibration error."""

    declared: DeclaredThreshold
    measured: IdentOperatingPoint

    @property
    def ratio(self) -> float | None:
        """Measured over declared FPIR (1 is a perfect calibration; None: no non-mated)."""
        fpir = self.measured.fpir
        return None if fpir is None else fpir / self.declared.target_fpir

    def to_json(self) -> dict[str, Any]:
        d = self.declared
        return {
            "declared_fpir": d.target_fpir,
            "threshold": number(d.threshold),
            "normalisation": d.normalisation,
            "extrapolated": d.extrapolated,
            "source": d.source,
            "measured": ident_point_json(self.measured),
            "measured_over_declared": number(self.ratio),
        }


@dataclass(frozen=True)
class GroupIdent:
    mated: int
    nonmated: int
    rank1: float | None
    at_threshold: IdentOperatingPoint | None


@dataclass(frozen=True)
class IdentifyEvaluation:
    gallery: ImageList
    probes: ImageList
    model_id: str
    searches: tuple[ProbeSearch, ...]
    probe_failed: tuple[bool, ...]
    gallery_failures: dict[str, int]
    probe_failures: dict[str, int]
    gallery_templates: int
    enrolled_subjects: int
    subjects_without_template: int
    cmc: list[float] | None
    rank: int
    operating: dict[float, IdentOperatingPoint | NotMeasurable]
    threshold: float | None
    threshold_rule: str | None
    at_threshold: IdentOperatingPoint | None
    groups: dict[str, GroupIdent]
    declared: dict[float, DeclaredPoint]
    """Thresholds the search path declares, measured (empty when no ``declare`` was given)."""

    @property
    def mated(self) -> int:
        return sum(1 for s in self.searches if s.mated)

    @property
    def nonmated(self) -> int:
        return sum(1 for s in self.searches if not s.mated)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "gallery": str(self.gallery.source),
            "probes": str(self.probes.source),
            "model_id": self.model_id,
            "gallery_images": len(self.gallery.entries),
            "gallery_templates": self.gallery_templates,
            "gallery_subjects": self.enrolled_subjects,
            "gallery_subjects_without_template": self.subjects_without_template,
            "gallery_images_failed": self.gallery_failures,
            "searches": len(self.searches),
            "mated": self.mated,
            "nonmated": self.nonmated,
            "no_face": sum(self.probe_failed),
            "no_face_mated": sum(
                1 for s, f in zip(self.searches, self.probe_failed, strict=True) if f and s.mated
            ),
            "probe_images_failed": self.probe_failures,
            "rank1": number(self.cmc[0]) if self.cmc else None,
            "cmc": self.cmc or [],
            "fnir_rank": self.rank,
            "fnir_at_fpir": {
                rate_key(t): number(op.fnir) if isinstance(op, IdentOperatingPoint) else None
                for t, op in self.operating.items()
            },
            "fpir_operating_points": {
                rate_key(t): ident_point_json(op) for t, op in self.operating.items()
            },
            "threshold": (
                {"value": number(self.threshold), "rule": self.threshold_rule}
                if self.threshold is not None
                else None
            ),
            "at_threshold": ident_point_json(self.at_threshold) if self.at_threshold else None,
            "declared_operating_points": {
                rate_key(t): p.to_json() for t, p in self.declared.items()
            },
            "groups": {
                name: {
                    "mated": g.mated,
                    "nonmated": g.nonmated,
                    "rank1": number(g.rank1),
                    "fnir": number(g.at_threshold.fnir) if g.at_threshold else None,
                    "fnir_ci": interval(g.at_threshold.fnir_ci) if g.at_threshold else None,
                    "fpir": number(g.at_threshold.fpir) if g.at_threshold else None,
                    "fpir_ci": interval(g.at_threshold.fpir_ci) if g.at_threshold else None,
                }
                for name, g in self.groups.items()
            },
        }


def ident_point_json(op: IdentOperatingPoint | NotMeasurable) -> dict[str, Any]:
    if isinstance(op, NotMeasurable):
        return {
            "measurable": False,
            "reason": op.reason,
            "needed": op.needed,
            "available": op.available,
        }
    return {
        "measurable": True,
        "threshold": number(op.threshold),
        "fpir": number(op.fpir),
        "fpir_ci": interval(op.fpir_ci),
        "false_positives": op.false_positives,
        "fnir": number(op.fnir),
        "fnir_ci": interval(op.fnir_ci),
        "misses": op.misses,
    }


def evaluate_identify(  # noqa: PLR0913
    gallery: ImageList,
    probes: ImageList,
    templates: ImageTemplates,
    *,
    search: SearchFn = exact_search,
    max_rank: int = CMC_RANKS,
    rank: int = 1,
    targets: Sequence[float] = FPIR_TARGETS,
    target_fpir: float = 0.01,
    threshold: float | None = None,
    declare: DeclareFn | None = None,
    declared_targets: Sequence[float] = DECLARED_TARGETS,
) -> IdentifyEvaluation:
    """Search every probe, then CMC, FNIR at FPIR and per-group figures (probe groups).

    With ``declare`` (called after the search, so it knows the gallery's size), the FPIR and
    FNIR at each threshold the search path declares for ``declared_targets`` are measured too.
    """
    if rank < 1 or max_rank < 1:
        raise InvalidArgument("rank and max rank must be >= 1")
    g_paths = [e.image for e in gallery.entries]
    g_vecs, g_keep = templates.stack(g_paths)
    g_subjects = [gallery.entries[k].subject for k in g_keep]
    enrolled = gallery.subjects
    p_paths = [e.image for e in probes.entries]
    p_vecs, p_keep = templates.stack(p_paths)
    g_quality = [templates.quality.get(g_paths[k]) for k in g_keep]
    found = (
        search(g_vecs, g_subjects, p_vecs, max(max_rank, rank), gallery_quality=g_quality)
        if p_keep
        else []
    )
    if len(found) != len(p_keep):
        raise InvalidArgument(f"search returned {len(found)} lists for {len(p_keep)} probes")
    lists: dict[int, tuple[Candidate, ...]] = {
        k: tuple(c) for k, c in zip(p_keep, found, strict=True)
    }
    searches = tuple(
        ProbeSearch(e.subject, e.subject in enrolled, lists.get(k, ()), e.group)
        for k, e in enumerate(probes.entries)
    )
    kept = set(p_keep)
    failed = tuple(k not in kept for k in range(len(probes.entries)))

    if threshold is not None:
        t: float | None = threshold
        rule: str | None = "given"
    else:
        t = threshold_at_fpir(searches, target_fpir, rank)
        rule = f"fpir<={rate_key(target_fpir)}" if t is not None else None
    at_t = rates_at_threshold(searches, t, rank) if t is not None else None

    groups: dict[str, GroupIdent] = {}
    if probes.has_groups:
        for name in sorted({s.group for s in searches if s.group}):
            members = [s for s in searches if s.group == name]
            curve = cmc(members, 1)
            groups[name] = GroupIdent(
                mated=sum(1 for s in members if s.mated),
                nonmated=sum(1 for s in members if not s.mated),
                rank1=curve[0] if curve else None,
                at_threshold=rates_at_threshold(members, t, rank) if t is not None else None,
            )

    declared: dict[float, DeclaredPoint] = {}
    if declare is not None and p_keep:
        for target in declared_targets:
            d = declare(target)
            at = rates_at_threshold(searches, d.threshold, rank, target)
            declared[target] = DeclaredPoint(d, at)

    return IdentifyEvaluation(
        gallery=gallery,
        probes=probes,
        model_id=templates.model_id,
        searches=searches,
        probe_failed=failed,
        gallery_failures=templates.failure_counts(g_paths),
        probe_failures=templates.failure_counts(p_paths),
        gallery_templates=len(g_keep),
        enrolled_subjects=len(enrolled),
        subjects_without_template=len(enrolled - set(g_subjects)),
        cmc=cmc(searches, max_rank),
        rank=rank,
        operating=fnir_at_fpir(searches, targets, rank),
        threshold=t,
        threshold_rule=rule,
        at_threshold=at_t,
        groups=groups,
        declared=declared,
    )


def run_identify(  # noqa: PLR0913
    gallery: ImageList,
    probes: ImageList,
    settings: Settings,
    *,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    cache: TemplateCache | None = None,
    search: SearchFn = exact_search,
    rank: int = 1,
    target_fpir: float = 0.01,
    threshold: float | None = None,
    declare: DeclareFn | None = None,
) -> IdentifyEvaluation:
    """Embed gallery and probe images (each distinct image once) and evaluate."""
    paths = [e.image for e in gallery.entries] + [e.image for e in probes.entries]
    templates = embed_images(paths, settings, workers=workers, on_done=on_done, cache=cache)
    return evaluate_identify(
        gallery,
        probes,
        templates,
        search=search,
        rank=rank,
        target_fpir=target_fpir,
        threshold=threshold,
        declare=declare,
    )
