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
``face_views``      aligned crops of a probe face and an enrolled face, with landmarks
``audit``           verify the audit log's chain (anchor, trusted key)
``audit_views``     each organisation's view of the log: entries, export with stubs, report
``reports``         lead-rate reports per organisation and agreement (JSON, HTML with a plot)
``video``           search a recorded video: one search per tracked person, audited once
``watch``           watch a live source: alerts as they happen, start/stop/alert entries
``organisations``   organisations, purpose categories, sharing agreements, lead release
``clustering``      unknown faces of a folder grouped into identities, audited once
``cluster_review``  kept cluster sets: list, merge, split, name, dismiss, undo, enrol, retention
==================  ======================================================================
"""

from faceledger.gallery.duplicates import NearDuplicate
from faceledger.gallery.enrol import BulkReport
from faceledger.usecases.audit import VerifyChain, verify_chain
from faceledger.usecases.audit_views import (
    AuditQuery,
    audit_entries,
    audit_entry,
    audit_use_report,
    export_audit,
)
from faceledger.usecases.cluster_review import (
    ClusterEnrolled,
    EnrolCluster,
    cluster_face_crop,
    cluster_set_json,
    cluster_set_summary_json,
    dismiss_cluster,
    enrol_cluster,
    list_cluster_sets,
    merge_clusters,
    name_cluster,
    purge_expired_cluster_sets,
    show_cluster_set,
    split_cluster,
    undo_cluster_action,
)
from faceledger.usecases.clustering import (
    ClusteredFace,
    ClusterImages,
    ImagesClustered,
    cluster_images,
    clusters_json,
    render_clusters_html,
)
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
from faceledger.usecases.face_views import FaceCrop, enrolled_face_crop, probe_face_crop
from faceledger.usecases.galleries import (
    CreateGallery,
    DeleteGallery,
    GalleryInfo,
    ShowGallery,
    create_gallery,
    delete_gallery,
    list_galleries,
    list_grants,
    show_gallery,
)
from faceledger.usecases.images import enrolled_image
from faceledger.usecases.organisations import (
    ChangeAgreement,
    CreateOrg,
    DefinePurpose,
    ReleaseLead,
    change_agreement,
    create_agreement,
    create_org,
    define_purpose,
    list_agreements,
    list_orgs,
    list_purposes,
    release_lead,
    revoke_agreement,
    show_agreement,
)
from faceledger.usecases.reports import (
    OrgReport,
    OrgReportRequest,
    org_report,
    render_org_report_html,
)
from faceledger.usecases.review import (
    DecideLead,
    FirstLookAt,
    QueueFilter,
    SearchPage,
    VisibleSearch,
    decide_lead,
    list_searches,
    probe_image,
    read_search,
    record_first_look,
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
    "AuditQuery",
    "BulkReport",
    "ChangeAgreement",
    "CheckDocument",
    "CheckReason",
    "ClusterEnrolled",
    "ClusterImages",
    "ClusteredFace",
    "CreateGallery",
    "CreateOrg",
    "DecideLead",
    "DefinePurpose",
    "DeleteGallery",
    "DocumentChecked",
    "DocumentRead",
    "EnrolCluster",
    "EnrolFolder",
    "EnrolImage",
    "EnrolUploads",
    "Enrolled",
    "EraseSubject",
    "Erased",
    "ErasureCheck",
    "ErasureReceipt",
    "FaceCrop",
    "FirstLookAt",
    "GalleryInfo",
    "ImagesClustered",
    "NearDuplicate",
    "OrgReport",
    "OrgReportRequest",
    "PairVerified",
    "QueueFilter",
    "ReadDocument",
    "ReleaseLead",
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
    "audit_entries",
    "audit_entry",
    "audit_use_report",
    "change_agreement",
    "check_document",
    "check_erasure",
    "cluster_face_crop",
    "cluster_images",
    "cluster_set_json",
    "cluster_set_summary_json",
    "clusters_json",
    "create_agreement",
    "create_gallery",
    "create_org",
    "decide_lead",
    "define_purpose",
    "delete_gallery",
    "dismiss_cluster",
    "document_number_hmac",
    "enrol_cluster",
    "enrol_folder",
    "enrol_image",
    "enrol_uploads",
    "enrolled_face_crop",
    "enrolled_image",
    "erase_subject",
    "export_audit",
    "export_subject",
    "list_agreements",
    "list_cluster_sets",
    "list_galleries",
    "list_grants",
    "list_orgs",
    "list_purposes",
    "list_searches",
    "list_subjects",
    "merge_clusters",
    "name_cluster",
    "org_report",
    "probe_face_crop",
    "probe_image",
    "purge_expired_cluster_sets",
    "read_document",
    "read_search",
    "record_first_look",
    "release_lead",
    "render_clusters_html",
    "render_org_report_html",
    "review_queue",
    "revoke_agreement",
    "search",
    "search_video",
    "show_agreement",
    "show_cluster_set",
    "show_gallery",
    "split_cluster",
    "subject_detail",
    "undo_cluster_action",
    "verify_chain",
    "verify_pair",
    "verify_subject",
    "watch_video",
]
