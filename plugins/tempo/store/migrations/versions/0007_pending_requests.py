"""public requests wait for their mailbox's confirmation in tempo_pending_request

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 17:30:00.000000

A request sent on the public page is kept here (its fields and its files' metadata) until the
address it names confirms it; only then are its card and run created.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tempo_pending_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("request_type", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("form", _json(), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("files", _json(), nullable=False),
        sa.Column("created_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_pending_request")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_tempo_pending_request_key_hash")),
    )
    op.create_index(
        op.f("ix_tempo_pending_request_expires_at"), "tempo_pending_request", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tempo_pending_request_expires_at"), table_name="tempo_pending_request")
    op.drop_table("tempo_pending_request")
