"""Near-duplicate faces across subjects: one face enrolled under two subject ids.

Byte-identical images are de-duplicated by their hash; a re-scan, a crop or another photo of
the same face enrolled under a second id is not, and a gallery then holds one person as two
identities (a known cause of mistaken identity in mug-shot galleries: a search returns both,
and whatever is known of one is attached to the other). So each enrolment compares every new
face with the gallery's templates of *other* subjects, and with the other new faces of the
same batch. A score at or above the model card's threshold at ``near_duplicate_fmr`` (1e-5 by
default: two different people score that high about once in 100,000 comparisons, so such a
pair is far likelier one person) is a near-duplicate. With ``near_duplicates = "warn"`` the
face is enrolled and the pair is reported and audited; with ``"refuse"`` it is not enrolled
(error ``near_duplicate``); ``"off"`` skips the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceledger.gallery.workspace import Workspace
from faceledger.match.verify import require_calibration
from faceledger.store import Gallery
from faceledger.types import Template

NEIGHBOURS = 8
"""Nearest templates looked at per new face (a subject may hold several templates)."""


@dataclass(frozen=True)
class NearDuplicate:
    """A new face of ``subject`` scoring ``score`` against a face of ``other_subject``."""

    subject: str
    other_subject: str
    score: float
    fmr: float
    """Estimated false-match rate of ``score`` (how often two different people reach it)."""
    other_template_id: int | None = None
    """The stored template matched; None when the other face is new in the same batch."""

    def describe(self) -> str:
        return f"near-duplicate of subject {self.other_subject} (score {self.score:.4f})"

    def as_json(self) -> dict[str, str | float | int | None]:
        return {
            "subject": self.subject,
            "other_subject": self.other_subject,
            "score": round(self.score, 6),
            "fmr": self.fmr,
            "other_template_id": self.other_template_id,
        }


def duplicate_threshold(ws: Workspace, gallery: Gallery) -> float:
    """The score at which two faces count as the same person for this check: the card's
    threshold at ``near_duplicate_fmr``, or at the smallest rate its impostor pairs can
    measure when that is larger (beyond it, the highest impostor score seen is the bound)."""
    table = require_calibration(ws.engine_for(gallery).card)
    floor = max(1.0 / c.impostor_pairs for c in table.curves())
    return table.threshold_for(max(ws.settings.near_duplicate_fmr, floor))


def find_near_duplicates(
    ws: Workspace, gallery: Gallery, new: Sequence[tuple[str, Template]]
) -> list[list[NearDuplicate]]:
    """For each ``(subject external id, template)`` about to be enrolled, the near-duplicates
    it has among the gallery's other subjects and the other new faces (earlier in ``new``)."""
    found: list[list[NearDuplicate]] = [[] for _ in new]
    card = ws.engine_for(gallery).card
    if ws.settings.near_duplicates == "off" or not new or card.calibration is None:
        return found  # an uncalibrated model has no score that means "one person"
    threshold = duplicate_threshold(ws, gallery)
    fmr_at = card.calibration.fmr_at
    queries = np.stack([t.vector for _, t in new]).astype(np.float32)
    index = ws.indexes.get(gallery, card.dimension)
    if len(index):
        hits = index.search(queries, min(NEIGHBOURS, len(index)))
        above = [
            [
                (int(t), float(v))
                for t, v in zip(ids, scores, strict=True)
                if t >= 0 and v >= threshold
            ]
            for ids, scores in zip(hits.ids, hits.scores, strict=True)
        ]
        owners = _owners(ws, {t for row in above for t, _ in row})
        for row, (subject, _) in enumerate(new):
            for tid, score in above[row]:
                if tid in owners and owners[tid] != subject:  # an id the store lacks: none
                    found[row].append(
                        NearDuplicate(subject, owners[tid], score, fmr_at(score).value, tid)
                    )
    sims = queries @ queries.T
    for i, (subject, _) in enumerate(new):
        for j in range(i):
            other = new[j][0]
            if other != subject and sims[i, j] >= threshold:
                score = float(sims[i, j])
                found[i].append(NearDuplicate(subject, other, score, fmr_at(score).value))
    return found


def _owners(ws: Workspace, template_ids: set[int]) -> dict[int, str]:
    """Template id → its subject's external id (only the few templates above the threshold
    are read, so an enrolment far from everyone reads none)."""
    if not template_ids:
        return {}
    stored = ws.store.get_templates(template_ids)
    subjects = ws.store.get_subjects({t.info.subject_id for t in stored.values()})
    return {tid: subjects[t.info.subject_id].external_id for tid, t in stored.items()}


def strongest(found: Sequence[NearDuplicate]) -> NearDuplicate:
    return max(found, key=lambda d: d.score)
