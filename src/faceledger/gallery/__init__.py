"""Galleries: enrolment (single and bulk, resumable), 1:N search, deletion and export.

These functions compose the store, the vector indexes, the engine and the audit log held by
a :class:`Workspace`; the CLI and the API call them and add nothing of their own.
"""

from faceledger.gallery.enrol import BulkReport, enrol_bulk, enrol_image
from faceledger.gallery.indexes import IndexManager
from faceledger.gallery.search import Candidate, FaceCandidates, SearchResult, search
from faceledger.gallery.subjects import (
    ErasureReceipt,
    RetentionRun,
    apply_retention,
    delete_gallery,
    delete_subject,
    export_subject,
    verify_erased,
)
from faceledger.gallery.workspace import Workspace, local_operator, open_workspace

__all__ = [
    "BulkReport",
    "Candidate",
    "ErasureReceipt",
    "FaceCandidates",
    "IndexManager",
    "RetentionRun",
    "SearchResult",
    "Workspace",
    "apply_retention",
    "delete_gallery",
    "delete_subject",
    "enrol_bulk",
    "enrol_image",
    "export_subject",
    "local_operator",
    "open_workspace",
    "search",
    "verify_erased",
]
