"""``record()``: write business facts onto the running process's record from any task."""

from __future__ import annotations

from typing import Any


def record(**fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the current process's ``data`` (call it inside a running task)::

    @task
    def keep_so_number(answer):
        record(so_number=answer["form"]["so_number"])
    """
    from airflow.sdk import get_current_context

    from tempo.steps.work import process_for_run
    from tempo.store.engine import write_session
    from tempo.store.processes import update_process_data

    context = get_current_context()
    dag_run = context["dag_run"]
    with write_session() as session:
        process_for_run(session, context.get("dag"), dag_run)
        process = update_process_data(session, dag_run.dag_id, dag_run.run_id, fields)
        return dict(process.data)
