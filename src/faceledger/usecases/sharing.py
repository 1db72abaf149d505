"""How a search uses galleries of other organisations: the agreement's purpose categories, its
cap on candidates, and redaction of leads until the owner releases them.

A user's grant on another organisation's gallery is effective only under a live agreement
(``access.orgs``); this module adds what the agreement says about one search. The searcher's
result and the audit entry name no subject of a redacted gallery: the audit entry holds a
keyed hash of it (the owner can match it with its review records; the searcher cannot invert
it), and only the review records, which the owner's reviewers read, keep the subject itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from faceledger.access import User
from faceledger.audit import Lead
from faceledger.errors import PermissionDenied, PurposeOutsideAgreement
from faceledger.gallery.workspace import Workspace
from faceledger.match.identify import Candidate, FaceCandidates
from faceledger.review import REDACTED_SUBJECT, GalleryTerms
from faceledger.store import Gallery
from faceledger.store.secrets import keyed_hash

REDACTION_SECRET = "redacted_lead"
"""Name of the deployment secret that keys the hashes of redacted subjects in the audit log."""
REDACTED_PREFIX = "redacted:"


@dataclass(frozen=True)
class SharedUse:
    """The terms of each gallery of one search."""

    requester_org: str | None
    terms: dict[str, GalleryTerms] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    """The most candidates one face may get from a gallery (the agreements' caps)."""

    @property
    def redacted(self) -> frozenset[str]:
        return frozenset(g for g, t in self.terms.items() if t.redacted)

    def owner_of(self, gallery: str) -> str | None:
        found = self.terms.get(gallery)
        return None if found is None else found.owner_org


def sharing_terms(ws: Workspace, actor: User, gals: Sequence[Gallery], purpose: str) -> SharedUse:
    """Each gallery's owner and, for another organisation's, the live agreement; refuses a
    purpose outside any agreement (:class:`PurposeOutsideAgreement`)."""
    owners = ws.orgs.owners(g.name for g in gals)
    use = SharedUse(actor.org)
    for g in gals:
        owner = owners[g.name]
        if actor.org is None or owner == actor.org:
            use.terms[g.name] = GalleryTerms(owner)
            continue
        agreement = ws.orgs.live_agreement(actor.org, g.name)
        if agreement is None:  # the grant was effective a moment ago: revoked in between
            raise PermissionDenied(
                f"no live agreement shares gallery {g.name!r} with {actor.org!r}"
            )
        if not agreement.allows_purpose(purpose):
            raise PurposeOutsideAgreement(
                f"agreement {agreement.id} with {owner!r} allows searching gallery {g.name!r} "
                f"only for: {', '.join(agreement.terms.purposes)}; not {purpose!r}"
            )
        use.terms[g.name] = GalleryTerms(owner, agreement.id, agreement.terms.redacted)
        if agreement.terms.max_candidates is not None:
            use.caps[g.name] = agreement.terms.max_candidates
    return use


def require_live_agreement(ws: Workspace, actor: User, gallery: str) -> None:
    """PermissionDenied unless ``actor``'s organisation owns ``gallery`` or has a live
    agreement on it *now*: read from the database at every call, so that a revocation or an
    expiry takes effect on the next request even where the caller's grants were cached."""
    if actor.org is None:
        return
    owner = ws.orgs.owner_of(gallery)
    if owner != actor.org and ws.orgs.live_agreement(actor.org, gallery) is None:
        raise PermissionDenied(
            f"no live agreement shares gallery {gallery!r} of {owner!r} with {actor.org!r}"
        )


def apply_caps(fc: FaceCandidates, use: SharedUse) -> FaceCandidates:
    """``fc`` keeping at most each agreement's cap of candidates per gallery (ranks renumbered)."""
    if not use.caps:
        return fc
    taken: dict[str, int] = {}
    kept: list[Candidate] = []
    for c in fc.candidates:
        taken[c.gallery] = taken.get(c.gallery, 0) + 1
        if taken[c.gallery] <= use.caps.get(c.gallery, len(fc.candidates)):
            kept.append(dataclasses.replace(c, rank=len(kept) + 1))
    return dataclasses.replace(fc, candidates=tuple(kept))


def masked(fc: FaceCandidates, use: SharedUse) -> FaceCandidates:
    """``fc`` as the searcher sees it: no subject of a redacted gallery (id, name, template)."""
    hidden = use.redacted
    if not hidden:
        return fc
    return dataclasses.replace(
        fc,
        candidates=tuple(
            dataclasses.replace(
                c, subject_id=0, external_id=REDACTED_SUBJECT, display_name=None, template_id=0
            )
            if c.gallery in hidden
            else c
            for c in fc.candidates
        ),
    )


def audited_leads(ws: Workspace, leads: Sequence[Lead], use: SharedUse) -> tuple[Lead, ...]:
    """``leads`` as the audit entry records them: a redacted gallery's subject as a keyed hash,
    its template not at all."""
    hidden = use.redacted
    return tuple(
        dataclasses.replace(
            lead,
            subject_id=redacted_reference(ws, lead.gallery, lead.subject_id),
            template_id=None,
        )
        if lead.gallery in hidden
        else lead
        for lead in leads
    )


def redacted_reference(ws: Workspace, gallery: str, subject_id: str) -> str:
    """What the audit log records for a redacted lead's subject."""
    return REDACTED_PREFIX + keyed_hash(ws.db, REDACTION_SECRET, f"{gallery}\x1f{subject_id}")
