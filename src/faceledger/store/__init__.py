"""Metadata store: galleries → subjects → templates, and resumable enrolment jobs.

One SQLAlchemy Core implementation (:class:`SqlStore`) serves SQLite and PostgreSQL behind the
:class:`MetadataStore` protocol; :func:`open_database` gives the engine other modules share.
"""

from faceledger.store.crypto import TemplateCipher, generate_key
from faceledger.store.database import (
    is_sqlite,
    open_database,
    read_transaction,
    translate_errors,
    write_transaction,
)
from faceledger.store.protocol import MetadataStore
from faceledger.store.queries import erased_item_key
from faceledger.store.records import (
    UNSET,
    Counts,
    Gallery,
    ItemOutcome,
    ItemStatus,
    Job,
    JobItem,
    LegalBasis,
    NewTemplate,
    Page,
    Removed,
    StoredTemplate,
    Subject,
    TemplateBatch,
    TemplateInfo,
)
from faceledger.store.sql import SqlStore

__all__ = [
    "UNSET",
    "Counts",
    "Gallery",
    "ItemOutcome",
    "ItemStatus",
    "Job",
    "JobItem",
    "LegalBasis",
    "MetadataStore",
    "NewTemplate",
    "Page",
    "Removed",
    "SqlStore",
    "StoredTemplate",
    "Subject",
    "TemplateBatch",
    "TemplateCipher",
    "TemplateInfo",
    "erased_item_key",
    "generate_key",
    "is_sqlite",
    "open_database",
    "read_transaction",
    "translate_errors",
    "write_transaction",
]
