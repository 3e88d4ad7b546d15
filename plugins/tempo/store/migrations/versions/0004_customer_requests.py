"""customer requests: process stage, counterparty email key, public page rate limit, mail files

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 19:00:00.000000

The customer request process shows its requester a stage, identifies a counterparty by email (one
card per address, however many first requests arrive at once) and lets counterparties register
requests on a public page whose rate limit lives in the store, shared by every API server. An
email may carry attachments (a disputed result's claim, to the head of unit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tempo_process", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage", sa.String(length=64), nullable=True))
    with op.batch_alter_table("tempo_counterparty", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("first_request_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    # Existing cards: the first card of each address (by code) owns it; later duplicates keep none.
    op.execute(
        "UPDATE tempo_counterparty SET email_key = lower(email) WHERE code IN "
        "(SELECT min(code) FROM tempo_counterparty WHERE email IS NOT NULL GROUP BY lower(email))"
    )
    with op.batch_alter_table("tempo_counterparty", schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f("uq_tempo_counterparty_email_key"), ["email_key"])
    with op.batch_alter_table("tempo_outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "attachment_ids",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
    op.create_table(
        "tempo_rate_limit",
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("window_start", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_tempo_rate_limit")),
    )
    op.create_index(
        op.f("ix_tempo_rate_limit_window_start"), "tempo_rate_limit", ["window_start"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tempo_rate_limit_window_start"), table_name="tempo_rate_limit")
    op.drop_table("tempo_rate_limit")
    with op.batch_alter_table("tempo_outbox", schema=None) as batch_op:
        batch_op.drop_column("attachment_ids")
    with op.batch_alter_table("tempo_counterparty", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_tempo_counterparty_email_key"), type_="unique")
        batch_op.drop_column("first_request_at")
        batch_op.drop_column("email_key")
    with op.batch_alter_table("tempo_process", schema=None) as batch_op:
        batch_op.drop_column("stage")
