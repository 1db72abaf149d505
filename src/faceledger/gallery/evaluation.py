"""The gallery search path as an evaluation search function.

``faceledger eval identify`` must measure what ``faceledger search`` does, so this enrols the
evaluation gallery's templates into a throw-away workspace and ranks every probe with
:func:`faceledger.gallery.ranking.rank`, the ranking ``search`` itself uses (same
index kind, same per-subject aggregation and score normalisation from the settings), and
:meth:`GallerySearch.declare` gives the threshold ``search`` would declare for a target FPIR
over the gallery last searched, so ``evaluate_identify(declare=...)`` measures its FPIR.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from faceledger.config import Settings
from faceledger.errors import InvalidArgument
from faceledger.evaluate.identify import DeclaredThreshold
from faceledger.gallery.ranking import rank
from faceledger.gallery.selfcal import precount
from faceledger.gallery.workspace import open_workspace
from faceledger.match.gallery_calibration import GalleryCalibration
from faceledger.match.identify import OperatingPoint, declared_point
from faceledger.models import ModelRegistry
from faceledger.store import NewTemplate
from faceledger.types import Template


class GallerySearch:
    """A ``SearchFn`` running the production ranking over a temporary SQLite workspace."""

    def __init__(self, settings: Settings, model_id: str) -> None:
        self.settings = settings
        self.model_id = model_id
        self.templates: int | None = None
        """Gallery templates of the last call (None before the first)."""
        self.own_calibration: GalleryCalibration | None = None
        """The last gallery's leave-one-subject-out searches (None: too small to count)."""

    def declared(self, fpir: float) -> OperatingPoint:
        """The threshold ``search`` declares for ``fpir`` over the last gallery searched
        (counted on that gallery's own members when it can be, as ``search`` does)."""
        if self.templates is None:
            raise InvalidArgument("no gallery searched yet")
        card = ModelRegistry(self.settings.model_dir).get(self.model_id)
        mode = self.settings.normalisation
        return declared_point(card, mode, fpir, self.templates, self.own_calibration)[0]

    def declare(self, fpir: float) -> DeclaredThreshold:
        """:meth:`declared` in the form ``evaluate_identify(declare=...)`` takes."""
        op = self.declared(fpir)
        return DeclaredThreshold(fpir, op.threshold, op.normalisation, op.extrapolated, op.source)

    def __call__(
        self,
        gallery_vectors: npt.NDArray[np.float32],
        gallery_subjects: Sequence[str],
        probe_vectors: npt.NDArray[np.float32],
        k: int,
        /,
        *,
        gallery_quality: Sequence[float | None] | None = None,
        leave_out: Sequence[str | None] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Each probe's ranked ``(subject, score)`` list; ``leave_out`` names, per probe, a
        subject to take out of the gallery for that search: out of the candidates and of every
        normalisation statistic, the search of someone never enrolled (NIST's mate-removed
        non-mated search done properly: dropping the mate from the list alone leaves its score
        in the probe's cohort statistics, which lowers every impostor's normalised score)."""
        if leave_out is not None and len(leave_out) != len(probe_vectors):
            raise InvalidArgument("one leave_out entry per probe")
        with tempfile.TemporaryDirectory(prefix="faceledger-eval-") as tmp:
            settings = dataclasses.replace(
                self.settings, data_dir=Path(tmp), database_url=None, template_key=None
            )
            ws = open_workspace(settings)
            try:
                g = ws.store.create_gallery(
                    "evaluation", model_id=self.model_id, created_by="eval", legal_basis="other"
                )
                ids: dict[str, int] = {}
                news = []
                quality = gallery_quality or [None] * len(gallery_subjects)
                for i, (vec, subject, q) in enumerate(
                    zip(gallery_vectors, gallery_subjects, quality, strict=True)
                ):
                    if subject not in ids:
                        ids[subject] = ws.store.add_subject(g.id, subject, enrolled_by="eval").id
                    news.append(
                        NewTemplate(
                            subject_id=ids[subject],
                            image_sha256=f"{i:064x}",
                            template=Template(self.model_id, np.asarray(vec, np.float32)),
                            quality_score=q,
                        )
                    )
                ws.store.add_templates(news)
                self.templates = len(news)
                # measured for the loosest target a search is usually given; smaller FPIRs
                # that it cannot count fall back to the model card, as in `search`
                self.own_calibration = precount(ws, g)
                names = {v: s for s, v in ids.items()}
                held = Counter(gallery_subjects)
                out: list[list[tuple[str, float]]] = []
                for i, vec in enumerate(probe_vectors):
                    gone = None if leave_out is None else leave_out[i]
                    exclude = None if gone not in ids else (ids[gone], held[gone])
                    ranking = rank(ws, [g], Template(self.model_id, vec), k, exclude=exclude)
                    out.append([(names[r.subject_id], r.score) for r in ranking.subjects])
                return out
            finally:
                ws.close()
