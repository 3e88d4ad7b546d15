"""steps await input: the clock's SLA schedule, owed wakes and its lease

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:40:00.000000

Waiting steps hold no trigger any more: the clock (``tempo.clock``, run by the API servers) fires
SLA timers by ``tempo_task.sla_next_at`` and wakes steps whose closed task has no ``woken_at``, under
a lease in ``tempo_lease`` so that one clock at a time does the work.

Existing rows: every open task with an SLA is due for a look at once (the clock fires what is due
and stores the real next moment); every task already closed counts as woken (a step still
deferred the old way re-reads its task when its trigger runs again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tempo.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WAKE_OWED = "woken_at IS NULL AND status IN ('completed', 'rejected', 'cancelled', 'expired')"


def upgrade() -> None:
    op.create_table(
        "tempo_lease",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_tempo_lease")),
    )
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sla_next_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("woken_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True)
        )
    now = sa.bindparam("now", tempo.store.models.utcnow(), type_=tempo.store.models.UtcDateTime())
    op.execute(
        sa.text(
            "UPDATE tempo_task SET sla_next_at = :now "
            "WHERE status IN ('open', 'claimed') AND sla_policy IS NOT NULL AND due_at IS NOT NULL"
        ).bindparams(now)
    )
    op.execute(
        sa.text(
            "UPDATE tempo_task SET woken_at = coalesce(completed_at, :now) "
            "WHERE status IN ('completed', 'rejected', 'cancelled', 'expired')"
        ).bindparams(now)
    )
    op.create_index(
        "ix_tempo_task_sla_next_at",
        "tempo_task",
        ["sla_next_at"],
        unique=False,
        sqlite_where=sa.text("sla_next_at IS NOT NULL"),
        postgresql_where=sa.text("sla_next_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tempo_task_wake_owed",
        "tempo_task",
        ["completed_at"],
        unique=False,
        sqlite_where=sa.text(WAKE_OWED),
        postgresql_where=sa.text(WAKE_OWED),
    )


def downgrade() -> None:
    op.drop_index("ix_tempo_task_wake_owed", table_name="tempo_task")
    op.drop_index("ix_tempo_task_sla_next_at", table_name="tempo_task")
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.drop_column("woken_at")
        batch_op.drop_column("sla_next_at")
    op.drop_table("tempo_lease")
