"""Tempo's tables (SQLAlchemy 2.0 typed models).

Tempo keeps its own store, never Airflow's metadata database: task and trigger code may not touch
Airflow's ORM, and the people who act on tasks need no Airflow account. Every schema change comes
with a migration in ``store/migrations/versions``.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")


#: The largest id (and version) a row can have: ids are INTEGER columns, 32-bit on PostgreSQL. Ids
#: from outside are checked against it, so a bigger one is a field error rather than a driver error.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


#: A task in one of these states is in somebody's inbox and can still be acted on.
ACTIVE_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.CLAIMED)
#: A task in one of these states is done; its waiting step resumes.
CLOSED_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.REJECTED, TaskStatus.CANCELLED, TaskStatus.EXPIRED)
#: Closed tasks whose waiting step has not been woken yet (the partial index of the clock's sweep).
WAKE_OWED = "woken_at IS NULL AND status IN ('completed', 'rejected', 'cancelled', 'expired')"


class ProcessStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class SlaState(enum.StrEnum):
    ON_TIME = "on_time"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    ESCALATED = "escalated"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable, readable in SQL, no PostgreSQL type.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


# --- directory -------------------------------------------------------------------------------------


class Unit(Base):
    __tablename__ = "tempo_unit"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("tempo_unit.code"), index=True)
    # Not a foreign key: units and people reference each other, and the directory loader checks it.
    head_username: Mapped[str | None] = mapped_column(String(150), index=True)
    #: The unit's working hours (``WorkingCalendar.to_dict()``); None means ``[tempo]``'s defaults.
    calendar: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class Person(Base):
    __tablename__ = "tempo_person"

    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    unit_code: Mapped[str | None] = mapped_column(ForeignKey("tempo_unit.code"), index=True)
    manager_username: Mapped[str | None] = mapped_column(ForeignKey("tempo_person.username"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (Index(None, "email"),)


class Role(Base):
    __tablename__ = "tempo_role"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class PersonRole(Base):
    __tablename__ = "tempo_person_role"

    username: Mapped[str] = mapped_column(ForeignKey("tempo_person.username"), primary_key=True)
    role_code: Mapped[str] = mapped_column(ForeignKey("tempo_role.code"), primary_key=True, index=True)


class Counterparty(Base):
    __tablename__ = "tempo_counterparty"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    responsible_username: Mapped[str | None] = mapped_column(ForeignKey("tempo_person.username"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: The email in lower case, unique: concurrent first requests from one address find one card
    #: (migration 0004). Kept in step with ``email`` by the model.
    email_key: Mapped[str | None] = mapped_column(String(320), unique=True)
    #: Set once, by the first request of this counterparty (compare-and-set: one request is "first").
    first_request_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    @validates("email")
    def _keep_email_key(self, _key: str, email: str | None) -> str | None:
        self.email_key = email.strip().lower() if email else None
        return email


class Absence(Base):
    """A person away from ``first_day`` to ``last_day`` (their calendar's days, both included), whose
    tasks go to ``deputy`` meanwhile: every process's, or only those of the templates in ``scope``.

    ``starts_at`` and ``ends_at`` are those days' bounds in the person's time zone, in UTC, so the
    clock and the assignment compare moments. With ``move_tasks`` the person's open tasks move to the
    deputy at the start (``moved_at``) and those nobody touched come back at the end
    (``returned_at``).
    """

    __tablename__ = "tempo_absence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("tempo_person.username"))
    deputy: Mapped[str] = mapped_column(ForeignKey("tempo_person.username"))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: The dag_ids it covers; None covers every process.
    scope: Mapped[list[str] | None] = mapped_column(JsonType)
    move_tasks: Mapped[bool] = mapped_column(Boolean, default=False)
    moved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recorded_by: Mapped[str | None] = mapped_column(String(150))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index(None, "username", "ends_at"),
        Index(None, "starts_at"),
        Index(None, "ends_at"),
        CheckConstraint("last_day >= first_day", name="days_in_order"),
        CheckConstraint("deputy <> username", name="deputy_is_someone_else"),
    )


# --- processes and tasks ---------------------------------------------------------------------------


class Process(Base):
    """One DAG run of a process template."""

    __tablename__ = "tempo_process"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    template: Mapped[str] = mapped_column(String(250))
    title: Mapped[str] = mapped_column(String(500), default="")
    business_key: Mapped[str | None] = mapped_column(String(250))
    requester: Mapped[str | None] = mapped_column(String(150))
    counterparty_code: Mapped[str | None] = mapped_column(String(64))
    unit_code: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[ProcessStatus] = mapped_column(
        _enum(ProcessStatus, "process_status"), default=ProcessStatus.RUNNING
    )
    current_step: Mapped[str | None] = mapped_column(String(500))
    #: Where the process stands in its own words ("accepted", "in_work", "done", "cancelled"),
    #: set by the template's steps (``tempo.set_stage``) and shown to the requester.
    stage: Mapped[str | None] = mapped_column(String(64))
    #: The business record: the start form as submitted, plus what the steps write back
    #: (the RMA's S/O number, for example).
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        Index(None, "template", "status", "started_at"),
        Index(None, "status", "started_at"),
        Index(None, "requester", "status"),
        Index(None, "counterparty_code", "status"),
        Index(None, "business_key"),
        # The reports' period filters (migration 0003).
        Index(None, "started_at"),
        Index(None, "finished_at"),
    )


class Task(Base):
    """One instance of a human step: what somebody must do, and what they did."""

    __tablename__ = "tempo_task"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("tempo_process.id"))
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    title: Mapped[str] = mapped_column(String(500))
    instructions: Mapped[str] = mapped_column(Text, default="")
    form_schema: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    outcomes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    assignee: Mapped[str | None] = mapped_column(String(150))
    candidate_role: Mapped[str | None] = mapped_column(String(64))
    candidate_unit: Mapped[str | None] = mapped_column(String(64))
    #: The absent person the assignee holds the task for (their deputy); shown as "for Sandra".
    acting_for: Mapped[str | None] = mapped_column(String(150))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus, "task_status"), default=TaskStatus.OPEN)
    outcome: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sla_policy: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    sla_state: Mapped[SlaState] = mapped_column(_enum(SlaState, "sla_state"), default=SlaState.ON_TIME)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(150))
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_by: Mapped[str | None] = mapped_column(String(150))
    #: Bumped by every state change; updates compare and set it so concurrent writers cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: When the task's next unfired SLA timer is due; None without an SLA, once all fired, and once
    #: the task is closed. The clock fires what is due by this column (``tempo.clock``).
    sla_next_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When the step waiting on this closed task was woken, or found no longer waiting. A closed
    #: task without it is a wake still owed: the clock delivers it (``tempo.clock``).
    woken_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id", "task_id", "map_index"),
        # Partial indexes: the clock's two sweeps read only the few rows they concern, however
        # many tasks wait or have ever closed (migration 0005).
        Index(
            "ix_tempo_task_sla_next_at",
            "sla_next_at",
            sqlite_where=text("sla_next_at IS NOT NULL"),
            postgresql_where=text("sla_next_at IS NOT NULL"),
        ),
        Index(
            "ix_tempo_task_wake_owed",
            "completed_at",
            sqlite_where=text(WAKE_OWED),
            postgresql_where=text(WAKE_OWED),
        ),
        Index(None, "status", "assignee"),
        Index(None, "status", "candidate_role"),
        Index(None, "status", "candidate_unit"),
        Index(None, "status", "due_at"),
        Index(None, "process_id"),
        Index(None, "completed_by", "completed_at"),
        Index(None, "created_at"),
        # Tasks answered in a report's period (migration 0003).
        Index(None, "completed_at"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class Lease(Base):
    """Who runs a job that must run in one place at a time (the clock), until when.

    A holder renews its lease while it runs; when it dies the lease runs out and another takes it.
    """

    __tablename__ = "tempo_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class HistoryEvent(Base):
    """The history of a process, its own events and its tasks': who did what, when."""

    __tablename__ = "tempo_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("tempo_process.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tempo_task.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(150))
    kind: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)

    __table_args__ = (
        Index(None, "task_id", "at"),
        Index(None, "process_id", "at"),
        Index(None, "kind", "at"),
    )


class SlaFired(Base):
    """One row per SLA timer that fired: the primary key makes each timer fire once per task."""

    __tablename__ = "tempo_sla_fired"

    task_id: Mapped[int] = mapped_column(ForeignKey("tempo_task.id"), primary_key=True)
    timer: Mapped[str] = mapped_column(String(64), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OutboxMessage(Base):
    """An email to deliver. The dedup key makes every message exist once, however often it is queued."""

    __tablename__ = "tempo_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    to_addrs: Mapped[list[str]] = mapped_column(JsonType)
    cc_addrs: Mapped[list[str]] = mapped_column(JsonType, default=list)
    subject: Mapped[str] = mapped_column(String(998))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: A sender owns a SENDING message until this moment; a crashed sender's lease runs out.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    process_id: Mapped[int | None] = mapped_column(ForeignKey("tempo_process.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tempo_task.id"))
    #: Attachments sent with the message (ids of ``tempo_attachment``), read when it is delivered.
    attachment_ids: Mapped[list[int] | None] = mapped_column(JsonType)

    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "task_id"),
    )


class Attachment(Base):
    """A file attached to a process or task; the content lives under ``[tempo] attachments_path``."""

    __tablename__ = "tempo_attachment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("tempo_process.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tempo_task.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_uri: Mapped[str] = mapped_column(String(1000))
    uploaded_by: Mapped[str | None] = mapped_column(String(150))
    uploaded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (Index(None, "process_id"), Index(None, "task_id"))


class RateLimitHit(Base):
    """Requests of one client in one fixed window (the public request page's limiter)."""

    __tablename__ = "tempo_rate_limit"

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index(None, "window_start"),)


class PendingRequest(Base):
    """A request sent on the public page and not yet confirmed from its mailbox: what the run will
    get and the files it will carry, but no card and no run. Found by the hash of the secret its
    confirmation link carries (the secret itself is never stored)."""

    __tablename__ = "tempo_pending_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_type: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254))
    #: The page's own fields and the request type's, as validated there.
    form: Mapped[dict[str, Any]] = mapped_column(JsonType)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: The files sent with it: ``filename``, ``content_type``, ``size``, ``sha256`` of each.
    files: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: Set by the one confirmation that wins; kept until expiry so a second one is told.
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index(None, "expires_at"),)
