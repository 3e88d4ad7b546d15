"""report indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:45:00.000000

The managers' reports select tasks answered in a period (``completed_at``), processes started in a
period across templates and statuses (``started_at``) and processes closed in a period
(``finished_at``); ``bench/reports.py`` measures them before and after this revision.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_tempo_task_completed_at", "tempo_task", ["completed_at"]),
    ("ix_tempo_process_started_at", "tempo_process", ["started_at"]),
    ("ix_tempo_process_finished_at", "tempo_process", ["finished_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(op.f(name), table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(op.f(name), table_name=table)
