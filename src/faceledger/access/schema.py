"""The access tables: users (roles, password hash), API keys (hashed), per-gallery grants."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "access_users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("roles", sa.String(256), nullable=False),  # comma-separated, sorted
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("password_hash", sa.Text(), nullable=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

api_keys = sa.Table(
    "access_api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("access_users.id"), nullable=False),
    sa.Column("secret_hash", sa.Text(), nullable=False),
    sa.Column("label", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    sa.Index("ix_access_api_keys_user", "user_id"),
)

grants = sa.Table(
    "access_grants",
    metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("access_users.id"), primary_key=True),
    sa.Column("gallery", sa.String(256), primary_key=True),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("granted_at", sa.String(32), nullable=False),
    sa.Column("granted_by", sa.String(64), nullable=False),
    sa.Index("ix_access_grants_gallery", "gallery"),
)

# -- organisations (added with agreements; a workspace made before them has none of these rows:
# its users and galleries belong to the default organisation, see ``access.orgs``) ----------

orgs = sa.Table(
    "access_orgs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

memberships = sa.Table(
    "access_memberships",
    metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("access_users.id"), primary_key=True),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Index("ix_access_memberships_org", "org"),
)

gallery_owners = sa.Table(
    "access_gallery_owners",
    metadata,
    sa.Column("gallery", sa.String(256), primary_key=True),
    sa.Column("org", sa.String(64), nullable=False),
    sa.Index("ix_access_gallery_owners_org", "org"),
)

purposes = sa.Table(
    "access_purposes",
    metadata,
    sa.Column("org", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

agreements = sa.Table(
    "access_agreements",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner_org", sa.String(64), nullable=False),
    sa.Column("gallery", sa.String(256), nullable=False),
    sa.Column("grantee_org", sa.String(64), nullable=False),
    sa.Column("level", sa.String(32), nullable=False),
    sa.Column("purposes", sa.Text(), nullable=False),  # JSON list of category names
    sa.Column("legal_basis", sa.Text(), nullable=False),
    sa.Column("starts_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=False),
    sa.Column("max_candidates", sa.Integer(), nullable=True),
    sa.Column("redacted", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
    sa.Column("revoked_by", sa.String(256), nullable=True),
    sa.Column("expiry_audited", sa.Boolean(), nullable=False),
    sa.Index("ix_access_agreements_grantee", "grantee_org", "gallery"),
    sa.Index("ix_access_agreements_owner", "owner_org"),
)
