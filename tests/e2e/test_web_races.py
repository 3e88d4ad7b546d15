"""Fifty people pressing "complete" at once through the real API server: one wins, 49 get 409, the
step resumes once and its downstream task runs once."""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session
from tempo.store.models import HistoryEvent, Task
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

THREADS = 50


def test_fifty_concurrent_completions_one_winner(airflow_stack):
    run_id = airflow_stack.trigger("e2e_quick_step", {"ref": "RACE-50"}, user="rob")

    task = wait_until(lambda: open_task(run_id), what="the task")
    wait_until(
        lambda: airflow_stack.task_states("e2e_quick_step", run_id)["ask"] == "awaiting_input", what="parking"
    )
    token = airflow_stack.token("sandra")
    url = f"{airflow_stack.base_url}/tempo/api/v1/tasks/{task.id}/complete"
    barrier = threading.Barrier(THREADS)
    codes: list[int] = []
    lock = threading.Lock()

    def press(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            response = client.post(
                url, json={"answers": {"answer": f"ABC-{n}"}}, headers={"Authorization": f"Bearer {token}"}
            )
        with lock:
            codes.append(response.status_code)

    threads = [threading.Thread(target=press, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * (THREADS - 1)

    assert airflow_stack.wait_for_run("e2e_quick_step", run_id) == "success"
    tries = airflow_stack.task_tries("e2e_quick_step", run_id)
    assert tries["keep"] == 1
    with read_session() as session:
        stored = session.get_one(Task, task.id)
        completions = session.scalar(
            select(func.count()).where(HistoryEvent.task_id == task.id, HistoryEvent.kind == "completed")
        )
        recorded = session.scalar(
            select(func.count()).where(
                HistoryEvent.process_id == task.process_id, HistoryEvent.kind == "data_recorded"
            )
        )
        from tempo.store.models import Process

        process = session.get_one(Process, task.process_id)
    assert completions == 1 and recorded == 1
    assert process.data["answer"] == stored.result["answer"]
