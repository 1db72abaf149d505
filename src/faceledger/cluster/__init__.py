"""Unknown faces → identities: clustering at a threshold read from a target false-match rate,
with cannot-link (two faces of one image are two people), seeds that pass the quality gates,
and ambiguous faces flagged for review (docs/clustering.md)."""

from faceledger.cluster.faces import (
    DEFAULT_METHOD,
    METHODS,
    Clustering,
    Method,
    cluster_faces,
)
from faceledger.cluster.graph import Source, margin_at_fmr, threshold_at_fmr

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Clustering",
    "Method",
    "Source",
    "cluster_faces",
    "margin_at_fmr",
    "threshold_at_fmr",
]
