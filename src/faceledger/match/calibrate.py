"""Build a calibration table from impostor pairs of labelled image sets.

Procedure (reproduced by ``faceledger calibrate``): embed every image's largest face; every
pair of templates of different subjects is an impostor pair; the overall curve uses all of
them, a group curve those pairs whose two sides share the group label. Images without a face
are left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from faceledger.models.calibration import CalibrationTable


def impostor_scores(
    vectors: npt.NDArray[np.float32], subjects: Sequence[str], block: int = 2048
) -> npt.NDArray[np.float32]:
    """Upper-triangle similarities of all pairs whose subjects differ."""
    n = len(subjects)
    codes = np.unique(np.asarray(subjects), return_inverse=True)[1]
    out: list[npt.NDArray[np.float32]] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors.T
        rows = np.arange(start, stop)[:, None]
        cols = np.arange(n)[None, :]
        mask = (cols > rows) & (codes[start:stop, None] != codes[None, :])
        out.append(sims[mask].astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def build_table(
    vectors: npt.NDArray[np.float32],
    subjects: Sequence[str],
    groups: Mapping[str, Sequence[str | None]] | None = None,
    *,
    worst_group: bool = False,
    source: str = "",
) -> CalibrationTable:
    """``groups`` maps a label column name to one label (or None) per template."""
    overall = impostor_scores(vectors, subjects)
    per_group: dict[str, npt.NDArray[np.float32]] = {}
    for column, labels in (groups or {}).items():
        for label in sorted({x for x in labels if x}):
            idx = [i for i, x in enumerate(labels) if x == label]
            scores = impostor_scores(vectors[idx], [subjects[i] for i in idx])
            if scores.size:
                per_group[f"{column}={label}"] = scores
    procedure = (
        "cosine similarity of L2-normalised templates; impostor pairs = every pair of images "
        "of different subjects; group curves use pairs whose both sides share the label"
    )
    return CalibrationTable.from_scores(
        overall,
        {k: v.astype(np.float64) for k, v in per_group.items()},
        worst_group=worst_group,
        source=source,
        procedure=procedure,
    )
