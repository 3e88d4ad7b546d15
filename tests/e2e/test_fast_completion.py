"""Airflow 3.3 can fail a task that resumes within seconds of parking (a stale executor event,
apache/airflow#71580 and #72716). A person answering 0.2 s after the step's task appears (often
before the step has parked) must still get exactly their answer through, every time: through the
web API, whose wake races the parking, and straight in the store, whose wake the clock delivers."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tempo.store.engine import read_session, write_session
from tempo.store.models import Process
from tempo.store.tasks import complete_task
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

RUNS = 20


def test_completion_right_after_the_task_appears_20_times_in_a_row(airflow_stack):
    retried = 0
    for n in range(RUNS):
        answer = f"RAC-{n}"
        run_id = airflow_stack.trigger("e2e_quick_step", {"ref": f"race-{n}"}, user="rob")

        task = wait_until(lambda run_id=run_id: open_task(run_id), interval=0.02, what=f"run {n}'s task")
        time.sleep(0.2)
        if n % 2:
            with write_session() as session:
                complete_task(session, task.id, actor="sandra", result={"answer": answer})
        else:
            response = airflow_stack.api(
                "POST",
                f"/tempo/api/v1/tasks/{task.id}/complete",
                user="sandra",
                json={"answers": {"answer": answer}},
            )
            assert response.status_code == 200, response.text

        assert airflow_stack.wait_for_run("e2e_quick_step", run_id) == "success", f"run {n} failed"
        with read_session() as session:
            process = session.scalars(select(Process).where(Process.run_id == run_id)).one()
        assert process.data["answer"] == answer and process.data["by"] == "sandra"
        retried += airflow_stack.task_tries("e2e_quick_step", run_id)["ask"] > 1
    # How often the stale executor event struck (and was survived) is worth seeing in the log.
    print(f"\n[tempo] {RUNS} fast completions, {retried} needed a retry after a stale executor event")


def test_an_attempt_failed_after_the_answer_retries_and_keeps_the_answer(airflow_stack, mail):
    """The safety net itself: the retry finds the task completed and returns the stored answer at once,
    without asking the person again."""
    run_id = airflow_stack.trigger("e2e_resume_fails_once", {"ref": "net-1"}, user="rob")

    task = wait_until(lambda: open_task(run_id), what="the task")
    with write_session() as session:
        complete_task(session, task.id, actor="sandra", result={"answer": "kept"})

    assert airflow_stack.wait_for_run("e2e_resume_fails_once", run_id) == "success"
    assert airflow_stack.task_tries("e2e_resume_fails_once", run_id)["ask"] == 2
    xcom = airflow_stack.api(
        "GET",
        f"/api/v2/dags/e2e_resume_fails_once/dagRuns/{run_id}/taskInstances/ask/xcomEntries/return_value",
    ).json()["value"]
    assert xcom["form"] == {"answer": "kept"}
    assert xcom["completed_by"] == "sandra"
    assert [m.subject for m in mail.messages].count("[Tempo] To do: Answer net-1") == 1
