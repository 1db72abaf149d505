"""The one error tree of faceledger.

Every error the engine raises on purpose derives from :class:`FaceLedgerError` and carries a
stable machine-readable ``code`` (used by the CLI exit messages and the HTTP problem+json
mapping). The tree::

    FaceLedgerError
    ├── InputError              the caller's input cannot be used
    │   ├── BadImage            not an image, truncated, unsupported mode
    │   ├── TooLarge            byte or pixel limit exceeded (checked before decoding pixels)
    │   ├── NoFace              no face found where one was required
    │   ├── AmbiguousFace       several faces and the caller asked for an unambiguous one
    │   ├── QualityRejected     enrolment image below the configured quality gates
    │   ├── NoMrz               no machine-readable zone found on a document image
    │   ├── AmbiguousMrz        more than one machine-readable zone on one image
    │   ├── UnreadableMrz       a zone was found but its lines could not be read as an MRZ
    │   └── InvalidArgument     malformed request, CSV, option value
    ├── ModelError
    │   ├── ModelFileError      model file missing or checksum mismatch
    │   ├── ModelMismatch       templates/vectors of different models compared or mixed
    │   ├── CalibrationError    no/invalid calibration table for a requested operating point
    │   └── OcrUnavailable      the OCR engine (Debian package tesseract-ocr) is not installed
    ├── StoreError
    │   ├── NotFound
    │   ├── Conflict            already exists / duplicate
    │   ├── IntegrityError      store and index disagree, corrupt file
    │   └── EncryptionKeyError  encrypted templates, key missing or not the one used
    ├── PolicyError
    │   ├── PurposeRequired
    │   ├── PermissionDenied
    │   │   └── AuthenticationFailed  no, unknown or revoked credentials (HTTP 401)
    │   ├── RetentionError
    │   └── RateLimited         too many failed or pending authentications (HTTP 429)
    └── AuditError
        └── ChainBroken         the audit hash chain does not verify
"""

from __future__ import annotations


class FaceLedgerError(Exception):
    """Base of every error raised by faceledger on purpose."""

    code = "faceledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(FaceLedgerError):
    code = "input_error"


class BadImage(InputError):
    code = "bad_image"


class TooLarge(InputError):
    code = "too_large"


class NoFace(InputError):
    code = "no_face"


class BadVideo(InputError):
    """Not a video, truncated, no video stream, an undecodable codec, zero frames."""

    code = "bad_video"


class VideoStalled(BadVideo):
    """A live source delivered no frame within its stall timeout."""

    code = "video_stalled"


class Cancelled(FaceLedgerError):
    """A long operation was cancelled by its caller; nothing of it was kept."""

    code = "cancelled"


class AmbiguousFace(InputError):
    code = "ambiguous_face"


class QualityRejected(InputError):
    code = "quality_rejected"

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class NoMrz(InputError):
    """No machine-readable zone (ICAO 9303) was found on a document image."""

    code = "no_mrz"


class AmbiguousMrz(InputError):
    """More than one machine-readable zone on one image: which document is meant is unclear."""

    code = "ambiguous_mrz"


class UnreadableMrz(InputError):
    """A zone with the MRZ's line structure was found, but OCR could not read it as one."""

    code = "unreadable_mrz"


class InvalidArgument(InputError):
    code = "invalid_argument"


class ModelError(FaceLedgerError):
    code = "model_error"


class ModelFileError(ModelError):
    code = "model_file"


class ModelMismatch(ModelError):
    code = "model_mismatch"


class CalibrationError(ModelError):
    code = "calibration"


class OcrUnavailable(ModelError):
    """The OCR engine is missing: install Debian's ``tesseract-ocr`` (scripts/test.sh does)."""

    code = "ocr_unavailable"


class StoreError(FaceLedgerError):
    code = "store_error"


class NotFound(StoreError):
    code = "not_found"


class Conflict(StoreError):
    code = "conflict"


class NearDuplicateFace(Conflict):
    """The face is, by a calibrated score, another subject's face already in the gallery."""

    code = "near_duplicate"


class CannotLink(Conflict):
    """A merge of clusters would put two faces of one image (two people) in one cluster."""

    code = "cannot_link"


class IntegrityError(StoreError):
    code = "integrity"


class EncryptionKeyError(StoreError):
    """Templates are encrypted and the configured key is missing or is not the one used."""

    code = "encryption_key"


class PolicyError(FaceLedgerError):
    code = "policy"


class PurposeRequired(PolicyError):
    code = "purpose_required"


class PermissionDenied(PolicyError):
    code = "permission_denied"


class PurposeOutsideAgreement(PolicyError):
    """A search of another organisation's gallery states a purpose its agreement does not
    allow."""

    code = "purpose_outside_agreement"


class AuthenticationFailed(PermissionDenied):
    """No credentials, or credentials that match no active key."""

    code = "unauthenticated"


class RetentionError(PolicyError):
    code = "retention"


class RateLimited(PolicyError):
    """Refused without being looked at: the client failed to authenticate too often, or too
    many keys are being checked at once; ``retry_after_s`` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuditError(FaceLedgerError):
    code = "audit_error"


class ChainBroken(AuditError):
    code = "chain_broken"

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position
