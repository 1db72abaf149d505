"""The application layer: one function per use case, a frozen request in, a typed result out.

The command line (``faceledger.cli``) and the service (``faceledger.api``) only parse their
input, call these functions and render what they return; every rule that combines the engine,
the store, the indexes, the audit log and the access policy lives here once. Each function
takes the :class:`~faceledger.gallery.Workspace` it works in and the
:class:`~faceledger.access.User` acting (the service's authenticated user, or the CLI's local
operator), and authorises that user before it touches anything.

==================  ======================================================================
module              use cases
==================  ======================================================================
``galleries``       create, list, show, delete a gallery
``enrolment``       enrol one image, several uploads, a folder or CSV in bulk (resumable)
``search``          1:N search with a purpose: candidate lists or "no candidate", audited
``verification``    1:1 of two images, or of an image against an enrolled subject, audited
``documents``       read an identity document (MRZ, portrait); check a live face against it
``subjects``        list, show and export (subject access request) subjects
``erasure``         erase a subject with a receipt, check a receipt, apply retention
``review``          read searches, the review queue, verdicts, the probe of a search
``images``          kept enrolled images, each view audited
``audit``           verify the audit log's chain (anchor, trusted key)
``video``           search a recorded video: one search per tracked person, audited once
``watch``           watch a live source: alerts as they happen, start/stop/alert entries
==================  ======================================================================
"""

from faceledger.gallery.duplicates import NearDuplicate
from faceledger.gallery.enrol import BulkReport
from faceledger.usecases.audit import VerifyChain, verify_chain
from faceledger.usecases.documents import (
    CheckDocument,
    CheckReason,
    DocumentChecked,
    DocumentRead,
    ReadDocument,
    check_document,
    document_number_hmac,
    read_document,
)
from faceledger.usecases.enrolment import (
    EnrolFolder,
    EnrolImage,
    Enrolled,
    EnrolUploads,
    Upload,
    UploadOutcome,
    UploadsEnrolled,
    enrol_folder,
    enrol_image,
    enrol_uploads,
)
from faceledger.usecases.erasure import (
    ApplyRetention,
    Erased,
    EraseSubject,
    ErasureCheck,
    ErasureReceipt,
    RetentionRun,
    apply_retention,
    check_erasure,
    erase_subject,
)
from faceledger.usecases.galleries import (
    CreateGallery,
    DeleteGallery,
    GalleryInfo,
    ShowGallery,
    create_gallery,
    delete_gallery,
    list_galleries,
    show_gallery,
)
from faceledger.usecases.images import enrolled_image
from faceledger.usecases.review import (
    DecideLead,
    SearchPage,
    VisibleSearch,
    decide_lead,
    list_searches,
    probe_image,
    read_search,
    review_queue,
)
from faceledger.usecases.search import SearchRequest, SearchResult, search
from faceledger.usecases.subjects import (
    SubjectDetail,
    export_subject,
    list_subjects,
    subject_detail,
)
from faceledger.usecases.verification import (
    PairVerified,
    SubjectVerified,
    VerifyPair,
    VerifySubject,
    verify_pair,
    verify_subject,
)
from faceledger.usecases.video import (
    TrackOutcome,
    VideoProgress,
    VideoSearchRequest,
    VideoSearchResult,
    search_video,
)
from faceledger.usecases.watch import (
    DEFAULT_EARLY_HITS,
    Alert,
    VideoWatchRequest,
    WatchSummary,
    watch_video,
)

__all__ = [
    "DEFAULT_EARLY_HITS",
    "Alert",
    "ApplyRetention",
    "BulkReport",
    "CheckDocument",
    "CheckReason",
    "CreateGallery",
    "DecideLead",
    "DeleteGallery",
    "DocumentChecked",
    "DocumentRead",
    "EnrolFolder",
    "EnrolImage",
    "EnrolUploads",
    "Enrolled",
    "EraseSubject",
    "Erased",
    "ErasureCheck",
    "ErasureReceipt",
    "GalleryInfo",
    "NearDuplicate",
    "PairVerified",
    "ReadDocument",
    "RetentionRun",
    "SearchPage",
    "SearchRequest",
    "SearchResult",
    "ShowGallery",
    "SubjectDetail",
    "SubjectVerified",
    "TrackOutcome",
    "Upload",
    "UploadOutcome",
    "UploadsEnrolled",
    "VerifyChain",
    "VerifyPair",
    "VerifySubject",
    "VideoProgress",
    "VideoSearchRequest",
    "VideoSearchResult",
    "VideoWatchRequest",
    "VisibleSearch",
    "WatchSummary",
    "apply_retention",
    "check_document",
    "check_erasure",
    "create_gallery",
    "decide_lead",
    "delete_gallery",
    "document_number_hmac",
    "enrol_folder",
    "enrol_image",
    "enrol_uploads",
    "enrolled_image",
    "erase_subject",
    "export_subject",
    "list_galleries",
    "list_searches",
    "list_subjects",
    "probe_image",
    "read_document",
    "read_search",
    "review_queue",
    "search",
    "search_video",
    "show_gallery",
    "subject_detail",
    "verify_chain",
    "verify_pair",
    "verify_subject",
    "watch_video",
]
