"""A person's answer resumes the step straight from the acting process, even with no triggerer."""

from __future__ import annotations

import pytest

from tempo.store.engine import read_session
from tempo.store.models import Task
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e


def test_cli_completion_resumes_the_step_while_the_triggerer_is_down(airflow_stack):
    run_id = airflow_stack.trigger("e2e_quick_step", {"ref": "WAKE-1"}, user="rob")

    task = wait_until(lambda: open_task(run_id), what="the task")
    wait_until(
        lambda: airflow_stack.task_states("e2e_quick_step", run_id)["ask"] == "awaiting_input", what="parking"
    )
    airflow_stack.kill("triggerer")
    try:
        result = airflow_stack.tempo(
            "tasks", "complete", str(task.id), "--by", "sandra", "--field", "answer=WAK-1"
        )
        assert result.returncode == 0, result.stderr
        assert airflow_stack.wait_for_run("e2e_quick_step", run_id, timeout=120) == "success"
    finally:
        airflow_stack.start_component(
            "triggerer",
            ["triggerer", "--skip-serve-logs"],
            airflow_stack.env(),
            airflow_stack.home / "component-logs",
        )
    with read_session() as session:
        assert session.get_one(Task, task.id).completed_by == "sandra"
