"""absences and deputies: tempo_absence, and the absent person a task is held for

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:30:00.000000

A person's absence names their deputy, the days (in the person's calendar) and the moments they
begin and end; ``tempo_task.acting_for`` names the absent person a deputy holds a task for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = tempo.store.models.UtcDateTime(timezone=True)
    op.create_table(
        "tempo_absence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("deputy", sa.String(length=150), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("starts_at", moment, nullable=False),
        sa.Column("ends_at", moment, nullable=False),
        sa.Column(
            "scope",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("move_tasks", sa.Boolean(), nullable=False),
        sa.Column("moved_at", moment, nullable=True),
        sa.Column("returned_at", moment, nullable=True),
        sa.Column("recorded_by", sa.String(length=150), nullable=True),
        sa.Column("recorded_at", moment, nullable=False),
        sa.CheckConstraint("last_day >= first_day", name=op.f("ck_tempo_absence_days_in_order")),
        sa.CheckConstraint("deputy <> username", name=op.f("ck_tempo_absence_deputy_is_someone_else")),
        sa.ForeignKeyConstraint(
            ["deputy"], ["tempo_person.username"], name=op.f("fk_tempo_absence_deputy_tempo_person")
        ),
        sa.ForeignKeyConstraint(
            ["username"], ["tempo_person.username"], name=op.f("fk_tempo_absence_username_tempo_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_absence")),
    )
    for columns in (["ends_at"], ["starts_at"], ["username", "ends_at"]):
        op.create_index(op.f(f"ix_tempo_absence_{'_'.join(columns)}"), "tempo_absence", columns, unique=False)
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acting_for", sa.String(length=150), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.drop_column("acting_for")
    op.drop_table("tempo_absence")  # its indexes go with it
