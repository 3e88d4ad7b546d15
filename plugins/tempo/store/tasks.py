"""Task lifecycle in the store: open, claim, complete, cancel; every change is one compare-and-set.

A state change is a single ``UPDATE ... WHERE id = :id AND version = :v AND status IN (...)``: of two
writers holding the same version exactly one updates a row, the other gets ``TaskConflict``
(a 409 on the web). Each change bumps ``version`` and writes a history event in the same transaction.
Closing a task clears its SLA schedule (``sla_next_at``); its waiting step is then owed a wake
(``woken_at`` is empty) until ``tempo.steps.resume`` delivers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    CLOSED_TASK_STATUSES,
    HistoryEvent,
    Process,
    SlaFired,
    Task,
    TaskStatus,
    utcnow,
)


class TaskNotFound(LookupError):
    pass


class TaskConflict(RuntimeError):
    """The task changed under the caller: somebody else acted first, or it is no longer open."""

    def __init__(self, task_pk: int, message: str) -> None:
        super().__init__(message)
        self.task_pk = task_pk


@dataclass
class TaskSpec:
    """What a human step asks for; ``open_task`` turns it into a row."""

    process_id: int
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    title: str
    instructions: str = ""
    form_schema: dict[str, Any] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    assignee: str | None = None
    candidate_role: str | None = None
    candidate_unit: str | None = None
    #: The absent person ``assignee`` stands in for.
    acting_for: str | None = None
    due_at: datetime | None = None
    sla_policy: dict[str, Any] | None = None
    #: The first SLA timer's moment (``tempo.sla.next_timer_at``), None without an SLA.
    sla_next_at: datetime | None = None


def record_event(
    session: Session,
    *,
    process_id: int,
    kind: str,
    actor: str | None = None,
    task_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> HistoryEvent:
    event = HistoryEvent(
        process_id=process_id, task_id=task_id, kind=kind, actor=actor, details=details or {}
    )
    session.add(event)
    return event


def get_task(session: Session, task_pk: int) -> Task:
    task = session.get(Task, task_pk)
    if task is None:
        raise TaskNotFound(f"task {task_pk} does not exist")
    return task


def find_task(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Task | None:
    return session.scalar(
        select(Task).where(
            Task.dag_id == dag_id, Task.run_id == run_id, Task.task_id == task_id, Task.map_index == map_index
        )
    )


def open_task(session: Session, spec: TaskSpec) -> tuple[Task, bool]:
    """The task row for this step instance, created once however often the step runs.

    Returns ``(task, changed)``: ``changed`` is False when an active or finished row already existed
    (a retry, a second trigger), True when the row was created or a cancelled one reopened.
    """
    existing = find_task(session, spec.dag_id, spec.run_id, spec.task_id, spec.map_index)
    if existing is None:
        task = Task(
            process_id=spec.process_id,
            dag_id=spec.dag_id,
            run_id=spec.run_id,
            task_id=spec.task_id,
            map_index=spec.map_index,
            title=spec.title,
            instructions=spec.instructions,
            form_schema=spec.form_schema,
            outcomes=spec.outcomes,
            assignee=spec.assignee,
            candidate_role=spec.candidate_role,
            candidate_unit=spec.candidate_unit,
            acting_for=spec.acting_for,
            due_at=spec.due_at,
            sla_policy=spec.sla_policy,
            sla_next_at=spec.sla_next_at,
        )
        try:
            with session.begin_nested():
                session.add(task)
        except IntegrityError:
            # Another execution of the same step inserted it first; use theirs.
            existing = find_task(session, spec.dag_id, spec.run_id, spec.task_id, spec.map_index)
            assert existing is not None
            return existing, False
        session.flush()
        record_event(
            session,
            process_id=spec.process_id,
            task_id=task.id,
            kind="created",
            details={
                "assignee": spec.assignee,
                "role": spec.candidate_role,
                "unit": spec.candidate_unit,
                "for": spec.acting_for,
            },
        )
        return task, True
    if existing.status in (TaskStatus.CANCELLED, TaskStatus.EXPIRED):
        # The run was cleared or restarted: the same row comes back to the inboxes, its SLA anew.
        session.execute(delete(SlaFired).where(SlaFired.task_id == existing.id))
        reopened = transition(
            session,
            existing.id,
            to_status=TaskStatus.OPEN,
            from_statuses=(existing.status,),
            expected_version=existing.version,
            actor=None,
            kind="reopened",
            values={
                "title": spec.title,
                "instructions": spec.instructions,
                "form_schema": spec.form_schema,
                "outcomes": spec.outcomes,
                "assignee": spec.assignee,
                "candidate_role": spec.candidate_role,
                "candidate_unit": spec.candidate_unit,
                "acting_for": spec.acting_for,
                "due_at": spec.due_at,
                "sla_policy": spec.sla_policy,
                "sla_next_at": spec.sla_next_at,
                "woken_at": None,
                "claimed_by": None,
                "claimed_at": None,
                "completed_at": None,
                "completed_by": None,
                "outcome": None,
                "result": None,
                "escalation_level": 0,
                "created_at": utcnow(),
            },
        )
        return reopened, True
    return existing, False


def transition(
    session: Session,
    task_pk: int,
    *,
    to_status: TaskStatus,
    from_statuses: Iterable[TaskStatus],
    expected_version: int | None,
    actor: str | None,
    kind: str,
    values: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Task:
    """Compare-and-set one task. Raises ``TaskConflict`` when the row is not in the expected state."""
    conditions = [Task.id == task_pk, Task.status.in_(list(from_statuses))]
    if expected_version is not None:
        conditions.append(Task.version == expected_version)
    values = dict(values or {})
    if to_status in CLOSED_TASK_STATUSES:
        values.update(sla_next_at=None, woken_at=None)
    statement = (
        update(Task)
        .where(*conditions)
        .values(status=to_status, version=Task.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        current = session.get(Task, task_pk, populate_existing=True)
        if current is None:
            raise TaskNotFound(f"task {task_pk} does not exist")
        raise TaskConflict(task_pk, _conflict_message(current, expected_version))
    task = session.get_one(Task, task_pk, populate_existing=True)
    record_event(
        session, process_id=task.process_id, task_id=task.id, kind=kind, actor=actor, details=details
    )
    return task


def _conflict_message(task: Task, expected_version: int | None) -> str:
    if task.status not in ACTIVE_TASK_STATUSES:
        who = f" by {task.completed_by}" if task.completed_by else ""
        return f"This task is already {task.status.value}{who}."
    if expected_version is not None and task.version != expected_version:
        return "This task was changed by someone else in the meantime; reload it and try again."
    return f"This task is {task.status.value}; that action is not possible now."


def complete_task(
    session: Session,
    task_pk: int,
    *,
    actor: str,
    result: dict[str, Any],
    outcome: str | None = None,
    expected_version: int | None = None,
    status: TaskStatus = TaskStatus.COMPLETED,
    acting_for: str | None = None,
) -> Task:
    """Record the human's answer (given ``acting_for``, as the deputy of that absent person).
    Exactly one of any number of concurrent callers succeeds."""
    details = {"outcome": outcome, "for": acting_for}
    return transition(
        session,
        task_pk,
        to_status=status,
        from_statuses=ACTIVE_TASK_STATUSES,
        expected_version=expected_version,
        actor=actor,
        kind=status.value,
        values={"completed_by": actor, "completed_at": utcnow(), "outcome": outcome, "result": result},
        details={k: v for k, v in details.items() if v} or None,
    )


def claim_task(session: Session, task_pk: int, *, actor: str, expected_version: int | None = None) -> Task:
    return transition(
        session,
        task_pk,
        to_status=TaskStatus.CLAIMED,
        from_statuses=(TaskStatus.OPEN,),
        expected_version=expected_version,
        actor=actor,
        kind="claimed",
        values={"claimed_by": actor, "claimed_at": utcnow()},
    )


def unclaim_task(session: Session, task_pk: int, *, actor: str, expected_version: int | None = None) -> Task:
    """Put a claimed task back into its queue."""
    return transition(
        session,
        task_pk,
        to_status=TaskStatus.OPEN,
        from_statuses=(TaskStatus.CLAIMED,),
        expected_version=expected_version,
        actor=actor,
        kind="unclaimed",
        values={"claimed_by": None, "claimed_at": None},
    )


def close_task(
    session: Session,
    task_pk: int,
    status: TaskStatus,
    *,
    actor: str | None,
    details: dict[str, Any] | None = None,
) -> Task:
    """Close an active task without an answer (``cancelled``, ``expired``), whatever its version."""
    return transition(
        session,
        task_pk,
        to_status=status,
        from_statuses=ACTIVE_TASK_STATUSES,
        expected_version=None,
        actor=actor,
        kind=status.value,
        details=details,
        values={"completed_at": utcnow()},
    )


def assign_task(
    session: Session,
    task_pk: int,
    *,
    actor: str | None,
    to: str,
    kind: str,
    expected_version: int | None = None,
    acting_for: str | None = None,
) -> Task:
    """Give an active task to person ``to`` (to hold for ``acting_for``, when they stand in for that
    absent person): back to open, claim dropped, recorded as ``kind``."""
    return transition(
        session,
        task_pk,
        to_status=TaskStatus.OPEN,
        from_statuses=ACTIVE_TASK_STATUSES,
        expected_version=expected_version,
        actor=actor,
        kind=kind,
        values={"assignee": to, "claimed_by": None, "claimed_at": None, "acting_for": acting_for},
        details={"to": to, "for": acting_for} if acting_for else {"to": to},
    )


def cancel_active_tasks(
    session: Session, dag_id: str, run_id: str, *, reason: str, keep_task_ids: Sequence[str] = ()
) -> list[Task]:
    """Cancel the run's tasks still in the inboxes (except those of ``keep_task_ids``)."""
    cancelled = []
    query = select(Task).where(
        Task.dag_id == dag_id, Task.run_id == run_id, Task.status.in_(list(ACTIVE_TASK_STATUSES))
    )
    for task in session.scalars(query).all():
        if task.task_id in keep_task_ids:
            continue
        try:
            cancelled.append(
                close_task(session, task.id, TaskStatus.CANCELLED, actor=None, details={"reason": reason})
            )
        except TaskConflict:
            continue  # closed meanwhile by somebody else: nothing left to cancel
    return cancelled


def list_tasks(
    session: Session,
    *,
    statuses: Iterable[TaskStatus] | None = None,
    assignee: str | None = None,
    dag_id: str | None = None,
    limit: int = 100,
) -> list[Task]:
    query = select(Task)
    if statuses is not None:
        query = query.where(Task.status.in_(list(statuses)))
    if assignee is not None:
        query = query.where(Task.assignee == assignee)
    if dag_id is not None:
        query = query.where(Task.dag_id == dag_id)
    query = query.order_by(Task.due_at.is_(None), Task.due_at, Task.created_at).limit(limit)
    return list(session.scalars(query))


def inbox_tasks(
    session: Session,
    *,
    username: str,
    roles: Sequence[str],
    unit: str | None,
    search: str | None = None,
    dag_id: str | None = None,
    business_key: str | None = None,
    counterparty: str | None = None,
    statuses: Sequence[TaskStatus] = ACTIVE_TASK_STATUSES,
    stands_in_for: Sequence[tuple[str, Sequence[str] | None]] = (),
    limit: int = 200,
) -> list[Task]:
    """A person's inbox: their own tasks, the queues they belong to, and the tasks still held by
    the absent people they stand in for (each with the templates it covers, None: all); overdue
    first, then by due date."""
    from sqlalchemy import and_, or_

    mine = or_(
        Task.assignee == username,
        Task.claimed_by == username,
        and_(
            Task.assignee.is_(None),
            Task.status == TaskStatus.OPEN,
            or_(Task.candidate_role.is_(None), Task.candidate_role.in_(list(roles))),
            or_(Task.candidate_unit.is_(None), Task.candidate_unit == unit),
            or_(Task.candidate_role.is_not(None), Task.candidate_unit.is_not(None)),
        ),
        *(
            and_(
                or_(Task.claimed_by == absent, and_(Task.assignee == absent, Task.claimed_by.is_(None))),
                Task.dag_id.in_(list(dags)) if dags is not None else true(),
            )
            for absent, dags in stands_in_for
        ),
    )
    query = (
        select(Task).join(Process, Process.id == Task.process_id).where(mine, Task.status.in_(list(statuses)))
    )
    if search:
        pattern = f"%{search.strip()}%"
        query = query.where(or_(Task.title.ilike(pattern), Process.title.ilike(pattern)))
    if dag_id:
        query = query.where(Task.dag_id == dag_id)
    if business_key:
        query = query.where(Process.business_key == business_key)
    if counterparty:
        query = query.where(Process.counterparty_code == counterparty)
    now = utcnow()
    overdue_first = (Task.due_at.is_not(None) & (Task.due_at < now)).desc()
    query = query.order_by(overdue_first, Task.due_at.is_(None), Task.due_at, Task.created_at).limit(limit)
    return list(session.scalars(query))
