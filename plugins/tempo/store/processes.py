"""Process rows: one per DAG run of a process template, following the run from start to finish."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tempo.store.models import ACTIVE_TASK_STATUSES, HistoryEvent, Process, ProcessStatus, Task, utcnow
from tempo.store.tasks import record_event


def ensure_process(
    session: Session,
    *,
    dag_id: str,
    run_id: str,
    template: str,
    title: str = "",
    business_key: str | None = None,
    requester: str | None = None,
    counterparty_code: str | None = None,
    unit_code: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[Process, bool]:
    """The process row of a DAG run, created once (the listener and the first step may race)."""
    existing = find_process(session, dag_id, run_id)
    if existing is not None:
        return existing, False
    process = Process(
        dag_id=dag_id,
        run_id=run_id,
        template=template,
        title=title[:500],
        business_key=business_key,
        requester=requester,
        counterparty_code=counterparty_code,
        unit_code=unit_code,
        data=data or {},
    )
    try:
        with session.begin_nested():
            session.add(process)
    except IntegrityError:
        existing = find_process(session, dag_id, run_id)
        assert existing is not None
        return existing, False
    session.flush()
    record_event(session, process_id=process.id, kind="process_started", actor=requester)
    return process, True


def processes_with_key(session: Session, dag_id: str, business_key: str) -> list[Process]:
    """The template's running and finished processes with this business key, newest first (a failed
    one does not count: starting again is how it is retried).

    Call it in the write transaction that then records the new process: the key stays locked until
    that transaction ends (on PostgreSQL by an advisory lock; SQLite's write transaction already
    holds the whole database), so of two starts of one key only the first finds none.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"tempo-business-key:{dag_id}:{business_key}"},
        )
    return list(
        session.scalars(
            select(Process)
            .where(
                Process.dag_id == dag_id,
                Process.business_key == business_key,
                Process.status != ProcessStatus.FAILED,
            )
            .order_by(Process.started_at.desc(), Process.id.desc())
        )
    )


def forget_process(session: Session, process_id: int) -> None:
    """Remove a process row recorded for a run that Airflow then did not create (it has no tasks)."""
    session.execute(delete(HistoryEvent).where(HistoryEvent.process_id == process_id))
    session.execute(delete(Process).where(Process.id == process_id))


def find_process(session: Session, dag_id: str, run_id: str) -> Process | None:
    return session.scalar(select(Process).where(Process.dag_id == dag_id, Process.run_id == run_id))


def finish_process(
    session: Session, process: Process, status: ProcessStatus, reason: str | None = None
) -> None:
    if process.status == status and process.finished_at is not None:
        return
    process.status = status
    process.finished_at = utcnow()
    process.current_step = None
    record_event(
        session,
        process_id=process.id,
        kind=f"process_{status.value}",
        details={"reason": reason} if reason else None,
    )


def restart_process(session: Session, process: Process) -> None:
    """The run was cleared and runs again."""
    if process.status == ProcessStatus.RUNNING and process.finished_at is None:
        return
    process.status = ProcessStatus.RUNNING
    process.finished_at = None
    record_event(session, process_id=process.id, kind="process_restarted")


def refresh_current_step(session: Session, process_id: int) -> None:
    """``current_step``: the titles of the process's tasks now in somebody's inbox."""
    titles = session.scalars(
        select(Task.title)
        .where(Task.process_id == process_id, Task.status.in_(list(ACTIVE_TASK_STATUSES)))
        .order_by(Task.created_at)
    ).all()
    process = session.get(Process, process_id)
    if process is not None:
        process.current_step = ", ".join(titles)[:500] or None


def update_process_data(session: Session, dag_id: str, run_id: str, fields: dict[str, Any]) -> Process:
    """Write business facts (an S/O number, a decision) onto the process record."""
    process = find_process(session, dag_id, run_id)
    if process is None:
        raise LookupError(f"no Tempo process for {dag_id} / {run_id}")
    process.data = {**(process.data or {}), **fields}
    record_event(session, process_id=process.id, kind="data_recorded", details={"fields": sorted(fields)})
    return process
