"""What the use cases (``faceledger.usecases``) work in: a workspace (store, indexes, audit
log, access control, reviews, kept images, engine), the per-gallery vector indexes kept in
agreement with the store, the ranking of a template against galleries, the galleries' own
FPIR counts, and the machinery of bulk enrolment jobs.
"""

from faceledger.gallery.enrol import BulkReport
from faceledger.gallery.indexes import IndexManager
from faceledger.gallery.workspace import (
    Workspace,
    local_operator,
    open_workspace,
    service_actor,
)

__all__ = [
    "BulkReport",
    "IndexManager",
    "Workspace",
    "local_operator",
    "open_workspace",
    "service_actor",
]
