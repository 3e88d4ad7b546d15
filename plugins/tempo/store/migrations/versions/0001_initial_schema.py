"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:54:51.411682
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tempo.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tempo_process",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("template", sa.String(length=250), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("business_key", sa.String(length=250), nullable=True),
        sa.Column("requester", sa.String(length=150), nullable=True),
        sa.Column("counterparty_code", sa.String(length=64), nullable=True),
        sa.Column("unit_code", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "success",
                "failed",
                name="process_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("current_step", sa.String(length=500), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_process")),
        sa.UniqueConstraint("dag_id", "run_id", name=op.f("uq_tempo_process_dag_id_run_id")),
    )
    with op.batch_alter_table("tempo_process", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_process_business_key"), ["business_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tempo_process_counterparty_code_status"),
            ["counterparty_code", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tempo_process_requester_status"), ["requester", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tempo_process_status_started_at"), ["status", "started_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tempo_process_template_status_started_at"),
            ["template", "status", "started_at"],
            unique=False,
        )

    op.create_table(
        "tempo_role",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tempo_role")),
    )
    op.create_table(
        "tempo_unit",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        sa.Column("head_username", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["tempo_unit.code"], name=op.f("fk_tempo_unit_parent_code_tempo_unit")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tempo_unit")),
    )
    with op.batch_alter_table("tempo_unit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_unit_head_username"), ["head_username"], unique=False)
        batch_op.create_index(batch_op.f("ix_tempo_unit_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "tempo_person",
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("unit_code", sa.String(length=64), nullable=True),
        sa.Column("manager_username", sa.String(length=150), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(
            ["manager_username"],
            ["tempo_person.username"],
            name=op.f("fk_tempo_person_manager_username_tempo_person"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_code"], ["tempo_unit.code"], name=op.f("fk_tempo_person_unit_code_tempo_unit")
        ),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_tempo_person")),
    )
    with op.batch_alter_table("tempo_person", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_person_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_tempo_person_unit_code"), ["unit_code"], unique=False)

    op.create_table(
        "tempo_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column(
            "form_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "outcomes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("assignee", sa.String(length=150), nullable=True),
        sa.Column("candidate_role", sa.String(length=64), nullable=True),
        sa.Column("candidate_unit", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "claimed",
                "completed",
                "rejected",
                "cancelled",
                "expired",
                name="task_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("due_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "sla_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "sla_state",
            sa.Enum(
                "on_time",
                "due_soon",
                "overdue",
                "escalated",
                name="sla_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("created_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=150), nullable=True),
        sa.Column("completed_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sa.String(length=150), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_tempo_task_version_positive")),
        sa.ForeignKeyConstraint(
            ["process_id"], ["tempo_process.id"], name=op.f("fk_tempo_task_process_id_tempo_process")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_task")),
        sa.UniqueConstraint(
            "dag_id",
            "run_id",
            "task_id",
            "map_index",
            name=op.f("uq_tempo_task_dag_id_run_id_task_id_map_index"),
        ),
    )
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tempo_task_completed_by_completed_at"),
            ["completed_by", "completed_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_tempo_task_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_tempo_task_process_id"), ["process_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tempo_task_status_assignee"), ["status", "assignee"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tempo_task_status_candidate_role"), ["status", "candidate_role"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tempo_task_status_candidate_unit"), ["status", "candidate_unit"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tempo_task_status_due_at"), ["status", "due_at"], unique=False)

    op.create_table(
        "tempo_attachment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_uri", sa.String(length=1000), nullable=False),
        sa.Column("uploaded_by", sa.String(length=150), nullable=True),
        sa.Column("uploaded_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["process_id"], ["tempo_process.id"], name=op.f("fk_tempo_attachment_process_id_tempo_process")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tempo_task.id"], name=op.f("fk_tempo_attachment_task_id_tempo_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_attachment")),
    )
    with op.batch_alter_table("tempo_attachment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_attachment_process_id"), ["process_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tempo_attachment_task_id"), ["task_id"], unique=False)

    op.create_table(
        "tempo_counterparty",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("responsible_username", sa.String(length=150), nullable=True),
        sa.Column("created_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["responsible_username"],
            ["tempo_person.username"],
            name=op.f("fk_tempo_counterparty_responsible_username_tempo_person"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tempo_counterparty")),
    )
    with op.batch_alter_table("tempo_counterparty", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tempo_counterparty_responsible_username"), ["responsible_username"], unique=False
        )

    op.create_table(
        "tempo_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column(
            "to_addrs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "cc_addrs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "failed",
                name="outbox_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", tempo.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", tempo.store.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("process_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["process_id"], ["tempo_process.id"], name=op.f("fk_tempo_outbox_process_id_tempo_process")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tempo_task.id"], name=op.f("fk_tempo_outbox_task_id_tempo_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_outbox")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_tempo_outbox_dedup_key")),
    )
    with op.batch_alter_table("tempo_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tempo_outbox_status_next_attempt_at"), ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tempo_outbox_task_id"), ["task_id"], unique=False)

    op.create_table(
        "tempo_person_role",
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("role_code", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_code"], ["tempo_role.code"], name=op.f("fk_tempo_person_role_role_code_tempo_role")
        ),
        sa.ForeignKeyConstraint(
            ["username"], ["tempo_person.username"], name=op.f("fk_tempo_person_role_username_tempo_person")
        ),
        sa.PrimaryKeyConstraint("username", "role_code", name=op.f("pk_tempo_person_role")),
    )
    with op.batch_alter_table("tempo_person_role", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_person_role_role_code"), ["role_code"], unique=False)

    op.create_table(
        "tempo_task_event",
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
            ["process_id"], ["tempo_process.id"], name=op.f("fk_tempo_task_event_process_id_tempo_process")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tempo_task.id"], name=op.f("fk_tempo_task_event_task_id_tempo_task")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tempo_task_event")),
    )
    with op.batch_alter_table("tempo_task_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tempo_task_event_kind_at"), ["kind", "at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tempo_task_event_process_id_at"), ["process_id", "at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tempo_task_event_task_id_at"), ["task_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tempo_task_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_task_event_task_id_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_event_process_id_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_event_kind_at"))

    op.drop_table("tempo_task_event")
    with op.batch_alter_table("tempo_person_role", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_person_role_role_code"))

    op.drop_table("tempo_person_role")
    with op.batch_alter_table("tempo_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_outbox_task_id"))
        batch_op.drop_index(batch_op.f("ix_tempo_outbox_status_next_attempt_at"))

    op.drop_table("tempo_outbox")
    with op.batch_alter_table("tempo_counterparty", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_counterparty_responsible_username"))

    op.drop_table("tempo_counterparty")
    with op.batch_alter_table("tempo_attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_attachment_task_id"))
        batch_op.drop_index(batch_op.f("ix_tempo_attachment_process_id"))

    op.drop_table("tempo_attachment")
    with op.batch_alter_table("tempo_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_task_status_due_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_status_candidate_unit"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_status_candidate_role"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_status_assignee"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_process_id"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_created_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_task_completed_by_completed_at"))

    op.drop_table("tempo_task")
    with op.batch_alter_table("tempo_person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_person_unit_code"))
        batch_op.drop_index(batch_op.f("ix_tempo_person_email"))

    op.drop_table("tempo_person")
    with op.batch_alter_table("tempo_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_unit_parent_code"))
        batch_op.drop_index(batch_op.f("ix_tempo_unit_head_username"))

    op.drop_table("tempo_unit")
    op.drop_table("tempo_role")
    with op.batch_alter_table("tempo_process", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tempo_process_template_status_started_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_process_status_started_at"))
        batch_op.drop_index(batch_op.f("ix_tempo_process_requester_status"))
        batch_op.drop_index(batch_op.f("ix_tempo_process_counterparty_code_status"))
        batch_op.drop_index(batch_op.f("ix_tempo_process_business_key"))

    op.drop_table("tempo_process")
