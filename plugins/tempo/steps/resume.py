"""Wake a waiting step at once from the process where the person acted.

The trigger notices every completion on its own (next poller tick, or NOTIFY on PostgreSQL), and
then Airflow's triggerer forwards the event in its next loop: together up to two seconds. When the
person acts through Tempo's web or API, the API server already has Airflow's database at hand, so
it hands the step the same typed event the trigger would, the way Airflow's own human-in-the-loop
responses resume their tasks. Whichever arrives first resumes the step; the other finds it no
longer deferred and does nothing. This runs only in Airflow's server processes and the CLI, never
in task or trigger code.
"""

from __future__ import annotations

import logging

from tempo.steps.trigger import StepClosedEvent, answer_of
from tempo.store.models import Task

log = logging.getLogger(__name__)


def wake_step(task: Task) -> bool:
    """Resume the deferred step of ``task`` now; False if it was not waiting (or Airflow is unreachable)."""
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
                    TaskInstance.state == TaskInstanceState.DEFERRED,
                )
                # Lock the task instance row only (its dag_run is joined eagerly) and wait for it: the
                # scheduler holds dag_run rows while it schedules, and skipping a locked row would
                # drop the wake until the trigger's next poll. Once the lock is ours, PostgreSQL
                # re-checks the state: a step resumed meanwhile is no longer DEFERRED and not found.
                .with_for_update(of=TaskInstance)
            )
            ti = session.scalar(query)
            if ti is None:
                return False
            handle_event_submit(TriggerEvent(event), task_instance=ti, session=session)
        return True
    except Exception:
        # The trigger still delivers the completion; waking early is only a shortcut.
        log.warning(
            "[tempo] could not wake step %s of %s at once; its trigger will",
            task.task_id,
            task.run_id,
            exc_info=True,
        )
        return False
