"""Human review of search leads: verdicts with notes, the two-person rule, no self-review."""

from faceledger.review.book import MAX_NOTE_CHARS, Reviews
from faceledger.review.model import (
    REDACTED_SUBJECT,
    FirstLook,
    GalleryTerms,
    Judgement,
    LeadState,
    LeadStatus,
    Release,
    ReviewDecision,
    SearchRecord,
    Verdict,
    lead_status,
)

__all__ = [
    "MAX_NOTE_CHARS",
    "REDACTED_SUBJECT",
    "FirstLook",
    "GalleryTerms",
    "Judgement",
    "LeadState",
    "LeadStatus",
    "Release",
    "ReviewDecision",
    "Reviews",
    "SearchRecord",
    "Verdict",
    "lead_status",
]
