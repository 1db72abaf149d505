"""How well faces are grouped into identities: the default against the open tools' settings.

For a labelled image list (``image,subject``), every image's face is embedded once and
clustered by each setting on the same templates:

- the candidates of :mod:`faceledger.cluster` (the default first) at a threshold read from a
  target FMR of the model card's calibration;
- the reference settings of open tools, distance constants on the same unit-length
  templates: dlib's face_clustering example (Chinese whispers, Euclidean distance below 0.5)
  and DBSCAN at eps 0.5 (Euclidean ↔ cosine 0.875) with min_samples 1 (single linkage) and
  3 (immich's three core neighbours). dlib's 0.5 was chosen for its *raw* descriptors,
  whose length is about 1.48 (mean of 20 London faces), so the same constants rescaled to
  unit length (0.5 / 1.48 = 0.338) are reported too, as a fairer reference.

Scores: pairwise precision/recall/F1 (over pairs of faces put together vs pairs of one
identity), BCubed precision/recall/F1 (per face, averaged), clusters against identities.
A face left out of every cluster (DBSCAN noise, an unassigned face) counts as a cluster of
one. Images without a face are counted and left out of the scores. Every face may seed here
(one face per image, the engine's face selection; probe mode, no quality gate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from faceledger.batch import EmbedOutcome
from faceledger.cache import TemplateCache
from faceledger.cluster import DEFAULT_METHOD, METHODS, cluster_faces, threshold_at_fmr
from faceledger.cluster.algorithms import dbscan, dlib_whispers_euclidean
from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.evaluate.jsonio import number
from faceledger.evaluate.protocols import ImageList
from faceledger.evaluate.templates import embed_images
from faceledger.models import ModelRegistry

DEFAULT_FMR = 1e-4
DLIB_RAW_NORM = 1.48
"""Mean length of dlib's raw face descriptors (20 London faces): the scale of its 0.5."""

Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Scores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    clusters: int
    identities: int

    def to_json(self) -> dict[str, Any]:
        return {k: (v if isinstance(v, int) else number(v)) for k, v in vars(self).items()}


def _singletons(labels: npt.ArrayLike) -> Labels:
    """Unclustered faces (-1) as clusters of one."""
    out = np.asarray(labels, dtype=np.int64).copy()
    loose = np.flatnonzero(out < 0)
    out[loose] = int(out.max(initial=-1)) + 1 + np.arange(loose.size)
    return out


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def score(pred: npt.ArrayLike, truth: Sequence[str]) -> Scores:
    """Pairwise and BCubed precision/recall/F1 of ``pred`` against the identities ``truth``."""
    c = _singletons(pred)
    t = np.unique(np.asarray(truth, dtype=object), return_inverse=True)[1].astype(np.int64)
    if c.shape != t.shape:
        raise InvalidArgument(f"{c.size} predicted labels for {t.size} faces")
    if c.size == 0:
        return Scores(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
    cell, cell_n = np.unique(c * (int(t.max()) + 1) + t, return_counts=True)
    c_n, t_n = np.bincount(c), np.bincount(t)
    both = int((cell_n * (cell_n - 1)).sum()) // 2
    put = int((c_n * (c_n - 1)).sum()) // 2
    same = int((t_n * (t_n - 1)).sum()) // 2
    pp = both / put if put else 1.0
    pr = both / same if same else 1.0
    # BCubed: each face's share of its cluster that is its identity, and vice versa
    of_face = dict(zip(cell.tolist(), cell_n.tolist(), strict=True))
    inter = np.array([of_face[k] for k in (c * (int(t.max()) + 1) + t).tolist()], dtype=float)
    bp = float(np.mean(inter / c_n[c]))
    br = float(np.mean(inter / t_n[t]))
    return Scores(pp, pr, _f1(pp, pr), bp, br, _f1(bp, br), int(np.unique(c).size), int(t_n.size))


@dataclass(frozen=True)
class SettingResult:
    name: str
    description: str
    reference: bool
    scores: Scores

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "reference": self.reference,
            **self.scores.to_json(),
        }


@dataclass(frozen=True)
class ClusterEvaluation:
    source: Path
    images: int
    faces: int
    failures: dict[str, int]
    identities: int
    target_fmr: float
    threshold: float
    default: str
    results: tuple[SettingResult, ...]

    def result(self, name: str) -> SettingResult:
        return next(r for r in self.results if r.name == name)

    def best_reference(
        self, names: Sequence[str] = ("dlib-whispers-0.5", "dbscan-0.5-ms1", "dbscan-0.5-ms3")
    ) -> SettingResult:
        return max((self.result(n) for n in names), key=lambda r: r.scores.bcubed_f1)

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": str(self.source),
            "images": self.images,
            "faces": self.faces,
            "no_template": self.failures,
            "identities": self.identities,
            "target_fmr": self.target_fmr,
            "threshold": self.threshold,
            "default": self.default,
            "settings": {r.name: r.to_json() for r in self.results},
        }

    def markdown(self) -> str:
        rows = [
            "| setting | clusters / ids | pairwise P | R | F1 | BCubed P | R | **F** |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            s = r.scores
            name = f"**{r.name}** (default)" if r.name == self.default else r.name
            rows.append(
                f"| {name} | {s.clusters} / {s.identities} | {s.pairwise_precision:.3f} | "
                f"{s.pairwise_recall:.3f} | {s.pairwise_f1:.3f} | {s.bcubed_precision:.3f} | "
                f"{s.bcubed_recall:.3f} | **{s.bcubed_f1:.3f}** |"
            )
        return "\n".join(rows)


Setting = tuple[str, str, bool, Any]
"""(name, description, is_reference, (vectors, sources) → labels)."""


def settings_for(threshold: float, target_fmr: float) -> list[Setting]:
    """(name, description, is_reference, vectors → labels) of every setting compared."""
    scaled = round(0.5 / DLIB_RAW_NORM, 3)
    out: list[Setting] = []
    for m in (DEFAULT_METHOD, *(m for m in METHODS if m != DEFAULT_METHOD)):
        out.append(
            (
                f"{m}@fmr{target_fmr:g}",
                f"faceledger {m}, cosine >= {threshold:.4f} (FMR {target_fmr:g}), cannot-link",
                False,
                lambda x, src, m=m: cluster_faces(x, src, threshold=threshold, method=m).labels,
            )
        )
    for eps, tag in ((0.5, "0.5"), (scaled, f"{scaled:g}-rawscale")):
        out += [
            (
                f"dlib-whispers-{tag}",
                f"dlib chinese_whispers_clustering, Euclidean < {eps:g}",
                True,
                lambda x, _s, e=eps: dlib_whispers_euclidean(x, e),
            ),
            (
                f"dbscan-{tag}-ms1",
                f"DBSCAN eps {eps:g}, min_samples 1",
                True,
                lambda x, _s, e=eps: dbscan(x, e, 1),
            ),
            (
                f"dbscan-{tag}-ms3",
                f"DBSCAN eps {eps:g}, min_samples 3 (immich)",
                True,
                lambda x, _s, e=eps: dbscan(x, e, 3),
            ),
        ]
    return out


def run_clustering(
    labels: ImageList,
    settings: Settings,
    *,
    target_fmr: float = DEFAULT_FMR,
    cache: TemplateCache | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    workers: int | None = None,
    extra: Sequence[Setting] = (),
) -> ClusterEvaluation:
    """Embed ``labels``' images once and score every setting on the same templates
    (``extra``: more settings, e.g. a benchmark's candidates from other libraries)."""
    card = ModelRegistry(settings.model_dir).get(settings.model_id)
    threshold = threshold_at_fmr(card, target_fmr)
    paths = [e.image for e in labels.entries]
    found = embed_images(paths, settings, workers=workers, on_done=on_done, cache=cache)
    x, keep = found.stack(paths)
    truth = [labels.entries[k].subject for k in keep]
    sources = [str(paths[k]) for k in keep]
    results = tuple(
        SettingResult(name, desc, ref, score(run(x, sources), truth))
        for name, desc, ref, run in (*settings_for(threshold, target_fmr), *extra)
    )
    return ClusterEvaluation(
        source=labels.source,
        images=len(dict.fromkeys(paths)),
        faces=len(keep),
        failures=found.failure_counts(paths),
        identities=len(set(truth)),
        target_fmr=target_fmr,
        threshold=threshold,
        default=results[0].name,
        results=results,
    )
