"""What the web reads from (and asks of) Airflow: process templates, starting a run, step states.

This is server-side code in Airflow's API server, so it uses Airflow's models, each call in its own
short session; task and trigger code never does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tempo.runs import PROCESS_TAG, TemplateInfo, is_process, template_info
from tempo.steps.human import HumanStep
from tempo.web.routemap import Step
from tempo.wording import humanize


class TemplateNotFound(LookupError):
    pass


class RunExists(Exception):
    """A run of the asked id exists already: nothing was started."""


def _serialized_dag(dag_id: str) -> Any:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        return SerializedDagModel.get_dag(dag_id, session=session)


def list_templates() -> list[tuple[TemplateInfo, bool]]:
    """Active DAGs made with ``tempo.process``, each with whether it is paused."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        rows = session.execute(
            select(DagModel.dag_id, DagModel.is_paused)
            .join(DagTag, DagTag.dag_id == DagModel.dag_id)
            .where(DagTag.name == PROCESS_TAG, DagModel.is_stale.is_(False))
            .order_by(DagModel.dag_id)
        ).all()
    templates = []
    for dag_id, paused in rows:
        dag = _serialized_dag(dag_id)
        if dag is not None and is_process(dag):
            templates.append((template_info(dag), bool(paused)))
    return templates


def get_template(dag_id: str) -> TemplateInfo:
    dag = _serialized_dag(dag_id)
    if dag is None or not is_process(dag):
        raise TemplateNotFound(f"There is no process template {dag_id!r}.")
    return template_info(dag)


def start_process(dag_id: str, conf: dict[str, Any], user_name: str, run_id: str | None = None) -> str:
    """Create a DAG run the way Airflow's REST API does (with ``run_id`` if given); return its run id."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagRunAlreadyExists
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user_name,
            run_id=run_id,
            conf=conf,
        )
    except DagRunAlreadyExists:
        raise RunExists(f"{dag_id} already has a run {run_id!r}") from None
    if run is None:
        raise TemplateNotFound(f"Process template {dag_id!r} could not be started.")
    return str(run.run_id)


@dataclass(frozen=True)
class RunShape:
    steps: list[Step]
    states: dict[str, str]


_STATE_GROUPS = {
    "success": "done",
    "skipped": "skipped",
    "failed": "failed",
    "upstream_failed": "failed",
    "running": "current",
    "deferred": "current",
    "queued": "current",
    "scheduled": "current",
    "up_for_retry": "current",
    "awaiting_input": "current",
}


def _step_title(task: Any, titles: Mapping[str, str]) -> str:
    """What a step is called: its task's title in this run, else its display name, else its plain
    title (one without Jinja), else its task_id in words (``check_warranty`` -> "Check warranty")."""
    if task.task_id in titles:
        return titles[task.task_id]
    display = getattr(task, "task_display_name", None)
    if display and display != task.task_id:
        return str(display)
    title = getattr(task, "title", None)
    if isinstance(title, str) and title.strip() and "{" not in title:
        return title
    return humanize(task.task_id)


def step_names(dag_id: str) -> dict[str, str]:
    """What each step of a template is called, by task_id (``_step_title``); none if it is gone."""
    dag = _serialized_dag(dag_id)
    return {task.task_id: _step_title(task, {}) for task in dag.tasks} if dag is not None else {}


def run_shape(dag_id: str, run_id: str, titles: Mapping[str, str] | None = None) -> RunShape:
    """The DAG's steps and where this run is along them, for the route map; ``titles``: the titles
    of this run's tasks by task_id, as their steps rendered them."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = _serialized_dag(dag_id)
    if dag is None:
        return RunShape([], {})
    steps = []
    for task in dag.tasks:
        # HumanStep and its subclasses keep its colour, which survives serialization.
        human = getattr(task, "ui_color", None) == HumanStep.ui_color
        steps.append(
            Step(
                task.task_id,
                _step_title(task, titles or {}),
                tuple(sorted(task.upstream_task_ids)),
                "human" if human else "task",
            )
        )
    with create_session(scoped=False) as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    states = {row.task_id: _STATE_GROUPS.get(str(row.state or ""), "pending") for row in rows}
    return RunShape(steps, states)
