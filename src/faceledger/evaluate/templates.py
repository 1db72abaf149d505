"""Templates for a protocol's images: each distinct image embedded once, failures kept as codes.

Evaluations score from an :class:`ImageTemplates` lookup, so the embedding (slow, parallel)
is separate from the metrics (fast) and can be shared or precomputed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceledger.batch import EmbedOutcome, embed_paths
from faceledger.cache import TemplateCache
from faceledger.config import Settings
from faceledger.errors import InvalidArgument

Vector = npt.NDArray[np.float32]
Vectors = npt.NDArray[np.float32]
"""Row-stacked L2-normalised templates, shape (n, dimension)."""


@dataclass(frozen=True)
class ImageTemplates:
    """Template per image path, or the error code that kept the image from having one."""

    model_id: str
    vectors: Mapping[Path, Vector]
    errors: Mapping[Path, str]
    quality: Mapping[Path, float] = field(default_factory=dict)
    """Face quality score (0-100) of each image's template, where known."""

    def get(self, path: Path) -> Vector | None:
        v = self.vectors.get(path)
        if v is None and path not in self.errors:
            raise InvalidArgument(f"no template was computed for {path}")
        return v

    def failure_counts(self, paths: Sequence[Path] | None = None) -> dict[str, int]:
        """Error code → number of images (of ``paths``, default all) without a template."""
        keys = self.errors.keys() if paths is None else [p for p in paths if p in self.errors]
        return dict(sorted(Counter(self.errors[p] for p in keys).items()))

    def stack(self, paths: Sequence[Path]) -> tuple[Vectors, list[int]]:
        """Templates of ``paths`` that have one, stacked, and their indices in ``paths``."""
        keep = [k for k, p in enumerate(paths) if self.get(p) is not None]
        if not keep:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        return np.stack([self.vectors[paths[k]] for k in keep]).astype(np.float32), keep

    @property
    def dimension(self) -> int:
        return next((int(v.shape[0]) for v in self.vectors.values()), 0)


def from_outcomes(model_id: str, outcomes: Sequence[EmbedOutcome]) -> ImageTemplates:
    vectors: dict[Path, Vector] = {}
    errors: dict[Path, str] = {}
    quality: dict[Path, float] = {}
    for o in outcomes:
        p = Path(o.path)
        if o.result is not None and o.result.template is not None:
            vectors[p] = o.result.template.vector.astype(np.float32)
            quality[p] = float(o.result.quality.score)
        else:
            errors[p] = o.error or "no_template"
    return ImageTemplates(model_id, vectors, errors, quality)


def embed_images(
    paths: Sequence[Path],
    settings: Settings,
    *,
    workers: int | None = None,
    on_done: Callable[[EmbedOutcome], None] | None = None,
    cache: TemplateCache | None = None,
) -> ImageTemplates:
    """Embed each distinct path once (probe mode: no enrolment quality gate), reusing
    ``cache`` (templates keyed by image sha256 and pipeline fingerprint) when given."""
    unique = list(dict.fromkeys(paths))
    outcomes = embed_paths(unique, settings, workers=workers, on_done=on_done, cache=cache)
    return from_outcomes(settings.model_id, outcomes)
