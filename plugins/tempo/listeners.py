"""Process rows follow their DAG runs.

- a run starts: its process row is created (for DAGs made with ``tempo.process``);
- a run starts again after being cleared: tasks of steps that are not waiting any more leave the
  inboxes (the steps reopen them when they run again);
- a run finishes: the process is closed with the run's state and its open tasks are cancelled.

Listeners run inside Airflow's scheduler and API server, not in task or trigger code. They only
write Tempo's store, and they never let an error escape into the scheduler.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


_LIVE_STATES = frozenset(
    {"awaiting_input", "deferred", "running", "queued", "scheduled", "up_for_retry", "up_for_reschedule"}
)


def _live_task_ids(dag_run: Any) -> list[str] | None:
    """Steps of the run that are waiting or about to run; a cleared step is in none of these states.

    Read through the run's own relationship, inside the caller's session: opening an Airflow session
    here would commit and close the scheduler's (it is thread-scoped). ``None`` when unknown.
    """
    try:
        return [ti.task_id for ti in dag_run.task_instances if str(ti.state or "") in _LIVE_STATES]
    except Exception:
        log.warning("[tempo] could not read the task states of %s", getattr(dag_run, "run_id", "?"))
        return None


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    try:
        _run_started(dag_run)
    except Exception:
        log.exception("[tempo] could not record the start of a run")


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _run_finished(dag_run, "success", msg)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _run_finished(dag_run, "failed", msg)


def _run_started(dag_run: Any) -> None:
    from tempo.runs import is_process, process_of_dag_run
    from tempo.store.engine import write_session
    from tempo.store.processes import find_process, refresh_current_step, restart_process
    from tempo.store.tasks import cancel_active_tasks

    dag_id, run_id = dag_run.dag_id, dag_run.run_id
    dag = getattr(dag_run, "dag", None)
    with write_session() as session:
        existing = find_process(session, dag_id, run_id)
        if existing is None:
            if is_process(dag):
                process_of_dag_run(session, dag, dag_run)
            return
        # The run starts again: it was cleared (wholly or in part).
        restart_process(session, existing)
        live = _live_task_ids(dag_run)
        if live is not None:
            cancel_active_tasks(session, dag_id, run_id, reason="run cleared", keep_task_ids=live)
        refresh_current_step(session, existing.id)


def _run_finished(dag_run: Any, state: str, msg: str) -> None:
    from tempo.store.engine import write_session
    from tempo.store.models import ProcessStatus
    from tempo.store.processes import find_process, finish_process
    from tempo.store.tasks import cancel_active_tasks

    try:
        dag_id, run_id = dag_run.dag_id, dag_run.run_id
        with write_session() as session:
            process = find_process(session, dag_id, run_id)
            if process is None:
                return
            cancelled = cancel_active_tasks(session, dag_id, run_id, reason=f"run {state}: {msg}")
            finish_process(session, process, ProcessStatus(state), reason=msg)
        if cancelled:
            log.info("[tempo] run %s %s: cancelled %d open task(s)", run_id, state, len(cancelled))
    except Exception:
        log.exception("[tempo] could not record the end of a run")
