"""sla timers and unit calendars

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:53:46.608165
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tempo_sla_fired",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("timer", sa.String(length=64), nullable=False),
        sa.Column("fired_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tempo_task.id"], name=op.f("fk_tempo_sla_fired_task_id_tempo_task")
        ),
        sa.PrimaryKeyConstraint("task_id", "timer", name=op.f("pk_tempo_sla_fired")),
    )
    with op.batch_alter_table("tempo_unit", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "calendar",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tempo_unit", schema=None) as batch_op:
        batch_op.drop_column("calendar")

    op.drop_table("tempo_sla_fired")
