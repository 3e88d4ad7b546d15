"""the history table is named for what it holds: tempo_task_event becomes tempo_history

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00.000000

The table holds the history of a process, its tasks' events and the process's own (started, stage,
overdue, finished), so it is ``tempo_history`` now. The rows move to a table created with the new
name's constraints and indexes (a plain rename would keep the old names on both databases), ids and
all; PostgreSQL's id sequence goes on from the highest id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = "id, process_id, task_id, at, actor, kind, details"


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=150), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["process_id"], ["tempo_process.id"], name=op.f(f"fk_{name}_process_id_tempo_process")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tempo_task.id"], name=op.f(f"fk_{name}_task_id_tempo_task")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    for columns in (["kind", "at"], ["process_id", "at"], ["task_id", "at"]):
        op.create_index(op.f(f"ix_{name}_{'_'.join(columns)}"), name, columns, unique=False)


def _move(old: str, new: str) -> None:
    _create(new)
    op.execute(f"INSERT INTO {new} ({COLUMNS}) SELECT {COLUMNS} FROM {old}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{new}', 'id'), coalesce(max(id), 0) + 1, false) "
            f"FROM {new}"
        )
    op.drop_table(old)  # its indexes go with it


def upgrade() -> None:
    _move("tempo_task_event", "tempo_history")


def downgrade() -> None:
    _move("tempo_history", "tempo_task_event")
