"""Steps that an older Tempo left deferred on a trigger still resume after the upgrade: woken while
deferred, or moved to ``awaiting_input`` as soon as a triggerer runs their stored trigger."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import open_task, trigger_classpaths, wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_deferred_step"


def complete(stack, task_pk: int) -> None:
    response = stack.api(
        "POST", f"/tempo/api/v1/tasks/{task_pk}/complete", user="sandra", json={"answers": {"answer": "ok"}}
    )
    assert response.status_code == 200, response.text


def test_steps_deferred_before_the_upgrade_resume(airflow_stack):
    state = lambda run_id: airflow_stack.task_states(DAG_ID, run_id)["ask"]  # noqa: E731
    airflow_stack.kill("triggerer")  # the stored triggers stay unrun, as across an upgrade
    try:
        woken, reparked = (airflow_stack.trigger(DAG_ID, {"ref": ref}, user="rob") for ref in ("W", "R"))
        for run_id in (woken, reparked):
            wait_until(lambda run_id=run_id: state(run_id) == "deferred", timeout=180, what="deferral")
        assert trigger_classpaths(airflow_stack).count("tempo.steps.trigger.HumanStepTrigger") == 2

        # Answered while still deferred: the wake resumes it, no triggerer needed.
        complete(airflow_stack, open_task(woken).id)
        assert airflow_stack.wait_for_run(DAG_ID, woken, timeout=180) == "success"
    finally:
        airflow_stack.restart("triggerer")

    # The triggerer runs the stored trigger once: the step parks the new way and frees the slot.
    wait_until(lambda: state(reparked) == "awaiting_input", timeout=180, what="the step to park again")
    wait_until(lambda: not trigger_classpaths(airflow_stack), timeout=60, what="the trigger row to go")
    complete(airflow_stack, open_task(reparked).id)
    assert airflow_stack.wait_for_run(DAG_ID, reparked, timeout=180) == "success"
