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

    from tempo.runs import process_of_dag_run
    from tempo.store.engine import write_session
    from tempo.store.processes import update_process_data

    context = get_current_context()
    dag_run = context["dag_run"]
    with write_session() as session:
        process_of_dag_run(session, context.get("dag"), context["dag_run"])
        process = update_process_data(session, dag_run.dag_id, dag_run.run_id, fields)
        return dict(process.data)


def set_stage(stage: str, note: str | None = None) -> None:
    """Move the current process to ``stage`` (e.g. "accepted", "in_work", "done", "cancelled").

    The stage is what the requester sees of the process; each change lands in its history.
    """
    import re

    from airflow.sdk import get_current_context

    from tempo.runs import process_of_dag_run
    from tempo.store.engine import write_session
    from tempo.store.tasks import record_event

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", stage):
        raise ValueError(f"stage {stage!r} must be lower_snake_case")
    context = get_current_context()
    with write_session() as session:
        process = process_of_dag_run(session, context.get("dag"), context["dag_run"])
        if process.stage == stage:
            return  # a retry of the same task
        previous, process.stage = process.stage, stage
        record_event(
            session,
            process_id=process.id,
            kind="stage",
            details={"from": previous, "to": stage, **({"note": note} if note else {})},
        )
