"""Wake a waiting step: hand its parked task instance the answer, the way Airflow's own
human-in-the-loop responses resume theirs.

A waiting ``HumanStep`` sits in Airflow's ``awaiting_input`` state (or ``deferred``, if an older
Tempo parked it on a trigger) and nothing polls for it. When its task closes, whoever closed it
wakes it at once from a server process: the API server that took the answer, the CLI, or the clock
(``tempo.clock``) for expiry. The wake is recorded in the store (``woken_at``); a closed task
without one is a wake still owed, and the clock delivers it: the API server may have died between
the two, or Airflow's database refused for a moment. This runs only in Airflow's server processes
and the CLI, never in task or trigger code.
"""

from __future__ import annotations

import enum
import logging

from sqlalchemy import update

from tempo.steps.events import StepClosedEvent, answer_of
from tempo.store.engine import write_session
from tempo.store.models import Task, utcnow

log = logging.getLogger(__name__)


class Wake(enum.Enum):
    #: The step was parked and is now scheduled to resume with the answer.
    WOKEN = "woken"
    #: The step no longer waits for a wake: it finished, was cleared or retried (a retry finds the
    #: stored answer), or its run is gone.
    NOT_NEEDED = "not_needed"
    #: The step is queued or running (it may be about to park): try again later.
    NOT_PARKED_YET = "not_parked_yet"
    #: Airflow's database could not be reached: try again later.
    FAILED = "failed"


#: Airflow task instance states in which a step can still park, or is resuming on its own.
_IN_FLIGHT = ("scheduled", "queued", "running", "restarting")


def wake_step(task: Task) -> Wake:
    """Resume the parked step of closed task ``task`` now, and record that its wake is delivered."""
    outcome = _resume(task)
    if outcome in (Wake.WOKEN, Wake.NOT_NEEDED):
        # Only for this version of the task: a run cleared meanwhile reopens it, owing a new wake.
        with write_session() as session:
            session.execute(
                update(Task)
                .where(Task.id == task.id, Task.version == task.version, Task.woken_at.is_(None))
                .values(woken_at=utcnow())
            )
    return outcome


def _resume(task: Task) -> Wake:
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        event: StepClosedEvent = {
            "status": "closed",
            "task_pk": task.id,
            "task_status": task.status.value,
            "version": task.version,
            "answer": answer_of(task),
        }
        with create_session() as session:
            query = (
                select(TaskInstance)
                .where(
                    TaskInstance.dag_id == task.dag_id,
                    TaskInstance.run_id == task.run_id,
                    TaskInstance.task_id == task.task_id,
                    TaskInstance.map_index == task.map_index,
                )
                # Lock the task instance row only (its dag_run is joined eagerly) and wait for it:
                # the scheduler holds dag_run rows while it schedules. The state is read under the
                # lock, so of a wake from here and one from the clock only the first resumes it.
                .with_for_update(of=TaskInstance)
            )
            ti = session.scalar(query)
            if ti is None:
                return Wake.NOT_NEEDED
            if ti.state in (TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED):
                handle_event_submit(TriggerEvent(event), task_instance=ti, session=session)
                return Wake.WOKEN
            if ti.state is not None and ti.state.value in _IN_FLIGHT:
                return Wake.NOT_PARKED_YET
            return Wake.NOT_NEEDED
    except Exception:
        log.warning(
            "[tempo] could not wake step %s of %s; the clock tries again",
            task.task_id,
            task.run_id,
            exc_info=True,
        )
        return Wake.FAILED
