"""Process-level deadlines through Airflow's Deadline Alerts.

``process(..., deadline=timedelta(days=3))`` attaches a ``DeadlineAlert`` to the DAG; when a run is
still going at its deadline, Airflow's triggerer calls ``process_overdue`` (it must live in the
installed package, not a DAG file). Tempo records the miss on the process, which the SLA misses page
lists, and emails the process owner and the requester's manager, once per run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)


def deadline_alert(deadline: timedelta, owner: str) -> Any:
    from airflow.sdk.definitions.callback import AsyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=deadline,
        callback=AsyncCallback(process_overdue, kwargs={"owner": owner}),
        name="tempo-process-deadline",
    )


async def process_overdue(context: dict[str, Any], owner: str = "") -> None:
    dag_run = context.get("dag_run") or {}
    dag_id, run_id = dag_run.get("dag_id"), dag_run.get("dag_run_id") or dag_run.get("run_id")
    if not dag_id or not run_id:
        log.warning("[tempo] deadline callback without a DAG run: %s", context)
        return
    keys = await asyncio.to_thread(record_miss, dag_id, run_id, owner)
    if keys:
        from tempo.mail.outbox import deliver_pending

        await asyncio.to_thread(deliver_pending, keys=keys)


def _owner_people(session: Any, owner: str) -> list[Any]:
    """``owner`` names a person (when deactivated, their manager) or a unit (then its head)."""
    from tempo import directory

    person = directory.get_person(session, owner) if owner else None
    if person is not None:
        stand_in = person if person.active else directory.manager_of(session, owner)
        return [stand_in] if stand_in is not None else []
    head = directory.head_of_unit(session, owner) if owner else None
    return [head] if head is not None else []


def record_miss(dag_id: str, run_id: str, owner: str) -> list[str]:
    """Mark the process overdue and queue the emails; nothing happens twice for one run."""
    from tempo import directory, links
    from tempo.mail.outbox import enqueue
    from tempo.mail.render import render_mail
    from tempo.sla import SLA_ACTOR
    from tempo.store.engine import write_session
    from tempo.store.models import ProcessStatus
    from tempo.store.processes import find_process
    from tempo.store.tasks import record_event

    with write_session() as session:
        process = find_process(session, dag_id, run_id)
        if process is None or process.status != ProcessStatus.RUNNING:
            return []
        if process.data.get("_deadline_missed"):
            return []
        process.data = {**process.data, "_deadline_missed": True}
        record_event(session, process_id=process.id, kind="process_overdue", actor=SLA_ACTOR)
        people = _owner_people(session, owner)
        if process.requester:
            manager = directory.manager_of(session, process.requester)
            if manager is not None:
                people.append(manager)
        keys = []
        for person in {p.username: p for p in people}.values():
            key = f"deadline:{process.id}:{person.username}"
            mail = render_mail(
                "process_overdue",
                {"process": process, "person": person, "process_page": links.process_page(process.id)},
                session=session,
            )
            enqueue(session, dedup_key=key, to=[person.email], mail=mail, process_id=process.id)
            keys.append(key)
        return keys
