"""What steps do in the store when they run: the process row, the task row, the emails.

Kept apart from the operator classes so the operators stay declarative and these functions can be
called (and tested) with a plain context.
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
from tempo.reports import may_act_for
from tempo.sla import next_timer_at
from tempo.steps.process import (
    COUNTERPARTY_KEY,
    PUBLIC_TRIGGER,
    REQUESTER_KEY,
    is_process,
    process_title,
    template_info,
)
from tempo.store.engine import write_session
from tempo.store.models import Attachment, Process, Task, utcnow
from tempo.store.processes import ensure_process, refresh_current_step
from tempo.store.tasks import TaskSpec, open_task

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from tempo.steps.human import HumanStep
    from tempo.working_hours import WorkingCalendar


def step_key(context: Any) -> tuple[str, str, str, int]:
    ti = context["ti"]
    map_index = ti.map_index if ti.map_index is not None else -1
    return ti.dag_id, ti.run_id, ti.task_id, map_index


def run_data(dag: Any, conf: dict[str, Any] | None) -> dict[str, Any]:
    """The run's business record: start-form defaults overlaid with the conf it was started with."""
    data: dict[str, Any] = {}
    if dag is not None and is_process(dag):
        for key in dag.params:
            value = dag.params.get_param(key).value
            data[key] = None if type(value).__name__ == "ArgNotSet" else value
    data.update(conf or {})
    return data


def process_for_run(session: Session, dag: Any, dag_run: Any) -> Process:
    """The process row of this DAG run, created if the listener has not created it yet."""
    conf = dict(getattr(dag_run, "conf", None) or {})
    data = run_data(dag, conf)
    if dag is not None and is_process(dag):
        info = template_info(dag)
        title = process_title(info, data)
        business_key = data.get(info.business_key) if info.business_key else None
    else:
        title, business_key = (getattr(dag, "dag_display_name", None) or dag_run.dag_id), None
    requester, counterparty = _parties(session, dag_run, conf)
    process, _ = ensure_process(
        session,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        template=dag_run.dag_id,
        title=title,
        business_key=str(business_key) if business_key not in (None, "") else None,
        requester=requester,
        counterparty_code=counterparty,
        data=data,
    )
    return process


#: Runs started on a server, by whoever has its shell (``airflow dags trigger``, ``dag.test()``).
_SERVER_TRIGGERS = frozenset({"cli", "test"})


def _parties(session: Session, dag_run: Any, conf: dict[str, Any]) -> tuple[str | None, str | None]:
    """Who asked, and for which counterparty, as the run's conf names them.

    A run a login started (Airflow's trigger API or UI, Tempo's start form) names someone else only
    where that login may act for them (``reports.may_act_for``: themself, the people of the units
    they head); otherwise the requester is the login and no counterparty is named. Runs no login
    started (the scheduler, another DAG, Tempo's public request page) and runs started on a server
    are taken as their conf says. A task sees no ``triggered_by``: there a server's run is checked
    too, which only costs it a requester Airflow's CLI named.
    """
    login = getattr(dag_run, "triggering_user_name", None)
    requester, counterparty = conf.get(REQUESTER_KEY) or login, conf.get(COUNTERPARTY_KEY)
    triggered_by = getattr(dag_run, "triggered_by", None)
    if (
        login is None
        or login == PUBLIC_TRIGGER
        or getattr(triggered_by, "value", triggered_by) in _SERVER_TRIGGERS
    ):
        return requester, counterparty
    if requester != login and not may_act_for(session, login, person=str(requester)):
        log.warning("[tempo] run %s: %r may not start it for %r", dag_run.run_id, login, requester)
        requester = login
    if counterparty is not None and not may_act_for(session, login, counterparty=str(counterparty)):
        log.warning("[tempo] run %s: %r may not name counterparty %r", dag_run.run_id, login, counterparty)
        counterparty = None
    return requester, counterparty


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
        "task_page": links.task_page(task.id),
        # The process's files (a disputed result's claim, say), downloadable by logged-in readers.
        "attachments": [
            {"filename": f.filename, "size": f.size, "url": links.attachment_download(f.id)} for f in files
        ],
    }


def _action_link(task_id: int, person: Any) -> str:
    # A counterparty answers on its own page (no login, no inbox); people use the task link.
    own_link = getattr(person, "action_link", None)
    return own_link(task_id) if callable(own_link) else links.task_link(task_id, person.username)


def open_step(step: HumanStep, context: Any) -> Task:
    """Create (or find) the step's task and queue its assignment emails; send them right away."""
    dag_id, run_id, task_id, map_index = step_key(context)
    keys: list[str] = []
    with write_session() as session:
        process = process_for_run(session, context.get("dag"), context["dag_run"])
        try:
            resolved = step.assign_to.resolve(session, process, context)
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


def queue_notification(
    context: Any, *, template: str, recipients: list[Any], extra: dict[str, Any], session: Session
) -> list[str]:
    """Queue one message per recipient person; the dedup key makes retries of the step harmless."""
    dag_id, run_id, task_id, map_index = step_key(context)
    process = process_for_run(session, context.get("dag"), context["dag_run"])
    keys = []
    for person in recipients:
        key = f"notify:{dag_id}:{run_id}:{task_id}:{map_index}:{person.username}"
        mail = render_mail(template, {"process": process, "person": person, "data": process.data, **extra})
        enqueue(session, dedup_key=key, to=[person.email], mail=mail, process_id=process.id)
        keys.append(key)
    return keys
