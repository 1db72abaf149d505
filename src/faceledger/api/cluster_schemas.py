"""Request and response bodies of the clustering endpoints (:mod:`.routes.clusters`).

The bodies are those of the use cases' own JSON (``clusters_json``, ``cluster_set_json``), as
``faceledger cluster --json`` and ``faceledger clusters show --json`` print them: faces with
their cluster, never a template or a face crop. A box is ``[left, top, right, bottom]``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from faceledger.api.schemas import Model
from faceledger.store import LegalBasis

Box = list[float]
ClusterNo = Annotated[
    int, Field(ge=0, le=1_000_000, description="A cluster of the set, by number.")
]


class TrackSpanOut(Model):
    """Where a video track was seen (its faces count as one clustered face)."""

    start_s: float
    end_s: float


class ClusteredTrackOut(TrackSpanOut):
    first_frame: int
    last_frame: int
    faces_seen: int
    faces_used: int = Field(description="Best faces fused into the track's template.")
    best_s: float = Field(description="When the best face (its box, its crop) was seen.")


class ClusteredFaceOut(Model):
    image: str = Field(description="The uploaded file's name (an image or a video).")
    image_sha256: str
    face_index: int = Field(
        description="The face's number in its image, or the track's in its video."
    )
    box: Box = Field(description="[left, top, right, bottom] in image (frame) pixels.")
    quality: float
    seedable: bool = Field(description="Passed the quality gates: may start a cluster.")
    cluster: int = Field(description="-1: joined no cluster.")
    ambiguous: bool
    runner_up: int
    own_score: float | None
    runner_up_score: float | None
    track: ClusteredTrackOut | None = Field(description="A video track's span, else null.")


class UnreadableOut(Model):
    image: str
    error: str


class ClusteringOut(Model):
    """Clusters of the uploaded faces: leads for a human to check, not identifications."""

    model_id: str
    method: str
    target_fmr: float
    threshold: float
    ambiguity_margin: float
    images: int
    videos: int
    unreadable: list[UnreadableOut]
    faces: list[ClusteredFaceOut]
    clusters: list[list[int]] = Field(description="Face indices of each cluster, largest first.")
    ambiguous: list[int]
    unassigned: list[int]
    audit_seq: int
    cluster_set_id: str | None = Field(description="The kept set (`keep`), else null.")


class SetFaceOut(Model):
    face: int
    image_sha256: str
    face_index: int
    box: Box
    quality: float
    seedable: bool
    cluster: int
    ambiguous: bool
    track: TrackSpanOut | None = Field(description="A video track's span, else null.")


class SetClusterOut(Model):
    cluster: int
    faces: list[int]
    label: str | None
    dismissed: bool
    dismiss_reason: str | None


class ClusterActionOut(Model):
    action: str
    actor: str
    at: AwareDatetime
    audit_seq: int
    undone: bool


class ClusterSetOut(Model):
    """A kept cluster set: its faces (no template, no crop), clusters and review actions."""

    set_id: str
    purpose: str
    case_ref: str
    created_by: str
    org: str
    created_at: AwareDatetime
    expires_at: AwareDatetime
    model_id: str
    threshold: float
    target_fmr: float
    method: str
    audit_seq: int
    faces: list[SetFaceOut]
    clusters: list[SetClusterOut]
    actions: list[ClusterActionOut]


class ClusterSetSummaryOut(Model):
    """A kept set as listed: who kept it, why and when, how many faces and clusters."""

    set_id: str
    purpose: str
    case_ref: str
    created_by: str
    org: str
    created_at: AwareDatetime
    expires_at: AwareDatetime
    faces: int
    clusters: int = Field(description="Clusters holding at least one face.")


class MergeIn(Model):
    into: ClusterNo
    other: int = Field(ge=0, le=1_000_000, description="The cluster merged into `into`.")


class SplitIn(Model):
    cluster: ClusterNo
    faces: list[int] = Field(
        min_length=1, max_length=10_000, description="Faces (numbers) moved to a new cluster."
    )


class NameIn(Model):
    cluster: ClusterNo
    label: str = Field(min_length=1, max_length=200, description="A free label, not an identity.")


class DismissIn(Model):
    cluster: ClusterNo
    reason: str = Field(min_length=1, max_length=4000, description="Why it is not a person.")


class EnrolClusterIn(Model):
    cluster: ClusterNo
    gallery: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200, description="The new or existing subject.")
    legal_basis: LegalBasis
    note: str = Field(default="", max_length=4000, description="Why (audited).")


class ClusterEnrolledOut(Model):
    gallery: str
    subject: str
    template_ids: list[int]
    faces: list[int] = Field(description="The set's faces enrolled (those passing the gates).")
    audit_seq: int
