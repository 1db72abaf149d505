"""The review tables: each audited search, its leads, and every reviewer decision."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

searches = sa.Table(
    "review_searches",
    metadata,
    sa.Column("search_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("purpose", sa.Text(), nullable=False),
    sa.Column("case_ref", sa.Text(), nullable=False),
    sa.Column("galleries", sa.Text(), nullable=False),  # JSON list of names
    sa.Column("model_id", sa.String(128), nullable=True),
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.Index("ix_review_searches_created", "created_at"),
    sa.Index("ix_review_searches_actor", "actor"),
)

leads = sa.Table(
    "review_leads",
    metadata,
    sa.Column(
        "search_id", sa.String(32), sa.ForeignKey("review_searches.search_id"), primary_key=True
    ),
    sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("gallery", sa.String(256), nullable=False),
    sa.Column("subject_id", sa.String(256), nullable=False),
    sa.Column("template_id", _BIG, nullable=True),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("fmr", sa.Float(), nullable=True),
    sa.Column("fmr_upper_bound", sa.Boolean(), nullable=False),
)

decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("search_id", sa.String(32), nullable=False),
    sa.Column("rank", sa.Integer(), nullable=False),
    sa.Column("reviewer", sa.String(256), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("decided_at", sa.String(32), nullable=False),
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.ForeignKeyConstraint(["search_id", "rank"], ["review_leads.search_id", "review_leads.rank"]),
    sa.Index("ix_review_decisions_lead", "search_id", "rank"),
)

search_galleries = sa.Table(
    "review_search_galleries",
    metadata,
    sa.Column(
        "search_id", sa.String(32), sa.ForeignKey("review_searches.search_id"), primary_key=True
    ),
    sa.Column("gallery", sa.String(256), primary_key=True),
    sa.Column("owner_org", sa.String(64), nullable=False),
    sa.Column("requester_org", sa.String(64), nullable=False),
    sa.Column("agreement_id", sa.String(32), nullable=True),
    sa.Column("redacted", sa.Boolean(), nullable=False),
    sa.Index("ix_review_search_galleries_owner", "owner_org", "requester_org"),
    sa.Index("ix_review_search_galleries_agreement", "agreement_id"),
)
"""Who owned each gallery a search searched, under which agreement, and whether its leads were
redacted (searches recorded before organisations have no rows: the default organisation's)."""

releases = sa.Table(
    "review_releases",
    metadata,
    sa.Column("search_id", sa.String(32), primary_key=True),
    sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("released_by", sa.String(256), nullable=False),
    sa.Column("released_at", sa.String(32), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.ForeignKeyConstraint(["search_id", "rank"], ["review_leads.search_id", "review_leads.rank"]),
)
"""Redacted leads a reviewer of the owning organisation released to the searching one."""

first_looks = sa.Table(
    "review_first_looks",
    metadata,
    sa.Column("search_id", sa.String(32), primary_key=True),
    sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("reviewer", sa.String(256), primary_key=True),
    sa.Column("judgement", sa.String(16), nullable=False),
    sa.Column("looked_at", sa.String(32), nullable=False),
    sa.Column("audit_seq", _BIG, nullable=False),
    sa.ForeignKeyConstraint(["search_id", "rank"], ["review_leads.search_id", "review_leads.rank"]),
)
"""Each reviewer's first judgement of a lead's two faces, made before seeing any score."""

lead_faces = sa.Table(
    "review_lead_faces",
    metadata,
    sa.Column("search_id", sa.String(32), primary_key=True),
    sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("face_index", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(["search_id", "rank"], ["review_leads.search_id", "review_leads.rank"]),
)
"""Which face of the probe each lead belongs to (searches of several faces; a search recorded
without a row here searched one face)."""
