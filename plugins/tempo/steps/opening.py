"""Opening a human step: its task row (once per step instance), its first SLA timer, and the email
to each person it is assigned to, delivered at once.

Kept apart from the operator class so the operator stays declarative and this can be called (and
tested) with a plain context.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException
from sqlalchemy import select
from sqlalchemy.orm import Session

from tempo import directory, links
from tempo.assignment import AssignmentError, Resolved
from tempo.mail.outbox import deliver_now, enqueue
from tempo.mail.render import render_mail
from tempo.runs import process_of_dag_run
from tempo.sla import next_timer_at
from tempo.store.engine import write_session
from tempo.store.models import Attachment, Process, Task, utcnow
from tempo.store.processes import refresh_current_step
from tempo.store.tasks import TaskSpec, open_task

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from tempo.steps.human import HumanStep
    from tempo.working_hours import WorkingCalendar


def step_key(context: Any) -> tuple[str, str, str, int]:
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    return ti.dag_id, ti.run_id, ti.task_id, map_index


def _calendar_of(session: Session, resolved: Resolved) -> WorkingCalendar:
    """Working hours that count for a task: those of its unit, or of the assignee's unit."""
    unit = resolved.unit
    if unit is None and resolved.assignee:
        person = directory.get_person(session, resolved.assignee)
        unit = person.unit_code if person else None
    if unit is None and resolved.role:
        units = {p.unit_code for p in resolved.recipients(session)}
        unit = units.pop() if len(units) == 1 else None
    return directory.calendar_for(session, unit)


def _process_files(session: Session, process: Process) -> list[Attachment]:
    return list(
        session.scalars(select(Attachment).where(Attachment.process_id == process.id).order_by(Attachment.id))
    )


def _mail_context(session: Session, task: Task, process: Process) -> dict[str, Any]:
    files = _process_files(session, process)
    return {
        "task": task,
        "process": process,
        # The absent person the assignee holds the task for ("for Sandra"), if any.
        "acting_for": directory.get_person(session, task.acting_for) if task.acting_for else None,
        "task_page": links.task_page(task.id),
        # The process's files (a disputed result's claim, say), downloadable by logged-in readers.
        "attachments": [
            {"filename": f.filename, "size": f.size, "url": links.attachment_download(f.id)} for f in files
        ],
    }


def _action_link(task_pk: int, person: Any) -> str:
    # A counterparty answers on its own page (no login, no inbox); people use the task link.
    own_link = getattr(person, "action_link", None)
    return own_link(task_pk) if callable(own_link) else links.task_link(task_pk, person.username)


def open_step(step: HumanStep, context: Any) -> Task:
    """Create (or find) the step's task and queue its assignment emails; send them right away."""
    dag_id, run_id, task_id, map_index = step_key(context)
    keys: list[str] = []
    with write_session() as session:
        process = process_of_dag_run(session, context.get("dag"), context["dag_run"])
        try:
            resolved = step.assign_to.resolve(session, process, context).standing_in(session, dag_id)
        except AssignmentError as exc:
            raise AirflowException(f"{task_id}: cannot assign the step: {exc}") from None
        now = utcnow()
        due_at = step.sla.due_at(now, _calendar_of(session, resolved)) if step.sla else None
        spec = TaskSpec(
            process_id=process.id,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            title=str(step.title)[:500],
            instructions=str(step.instructions or ""),
            form_schema=step.task_form_schema(),
            outcomes=list(step.outcomes),
            assignee=resolved.assignee,
            candidate_role=resolved.role,
            candidate_unit=resolved.unit,
            acting_for=resolved.acting_for,
            due_at=due_at,
            sla_policy=step.sla.to_dict() if step.sla else None,
            sla_next_at=next_timer_at(step.sla, due_at) if step.sla and due_at else None,
        )
        task, changed = open_task(session, spec)
        if changed:
            refresh_current_step(session, process.id)
            for person in resolved.recipients(session):
                key = f"task:{task.id}:v{task.version}:assigned:{person.username}"
                mail = render_mail(
                    step.mail_template,
                    {
                        **_mail_context(session, task, process),
                        "person": person,
                        "action_link": _action_link(task.id, person),
                    },
                    session=session,
                )
                enqueue(
                    session,
                    dedup_key=key,
                    to=[person.email],
                    mail=mail,
                    process_id=process.id,
                    task_id=task.id,
                    attachment_ids=[f.id for f in _process_files(session, process)]
                    if step.mail_attachments
                    else (),
                )
                keys.append(key)
    deliver_now(keys)
    return task
