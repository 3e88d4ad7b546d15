"""Two API servers and two triggerers on one PostgreSQL: an emailed link works on either server, the
same completion sent to both at once has one winner, and no step resumes or emails twice."""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from sqlalchemy import func, select

from tempo.store.engine import read_session
from tempo.store.models import HistoryEvent, Process, Task
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_quick_step"


def todo_mails(mail, ref: str) -> list:
    return [m for m in list(mail.messages) if m.subject == f"[Tempo] To do: Answer for {ref}"]


def completions_of(task_id: int) -> int:
    with read_session() as session:
        return session.scalar(
            select(func.count()).where(HistoryEvent.task_id == task_id, HistoryEvent.kind == "completed")
        )


def step_ran_once(stack, run_id: str) -> None:
    """The run finished and what follows the step ran once. (The step itself may show a second try:
    the retry that survives Airflow's fast-resume race, which returns the stored answer.)"""
    assert stack.wait_for_run(DAG_ID, run_id) == "success"
    assert stack.task_tries(DAG_ID, run_id)["keep"] == 1


def test_an_emailed_link_works_on_either_api_server(pg_stack, pg_mail):
    second = pg_stack.api_servers["api-server-2"]
    run_id = pg_stack.trigger(DAG_ID, {"ref": "SCALE-1"}, user="rob")
    mail = wait_until(lambda: todo_mails(pg_mail, "SCALE-1"), timeout=120, what="the email")[0]
    link = re.search(r"(http://\S+/tempo/act/\S+)", mail.body("plain")).group(1)
    assert link.startswith(pg_stack.base_url + "/tempo/act/")
    path = link.removeprefix(pg_stack.base_url)

    # Opened on the first server, answered on the second: same keys, same store.
    page = httpx.get(pg_stack.base_url + path, timeout=30)
    assert page.status_code == 200 and "Answer for SCALE-1" in page.text
    page = httpx.get(second + path, timeout=30)
    assert page.status_code == 200 and "Answer for SCALE-1" in page.text
    form = {
        "csrf": re.search(r'name="csrf" value="([^"]+)"', page.text).group(1),
        "version": re.search(r'name="version" value="(\d+)"', page.text).group(1),
        "answer": "SCA-1",
    }
    answered = httpx.post(second + path, data=form, timeout=60)
    assert answered.status_code == 303, answered.text
    assert answered.headers["location"].endswith("/done")

    # The first server knows it is done: the same form again is refused there, and nothing changes.
    again = httpx.post(pg_stack.base_url + path, data=form, timeout=60)
    assert again.status_code == 409
    step_ran_once(pg_stack, run_id)
    with read_session() as session:
        task = session.scalars(select(Task).where(Task.run_id == run_id)).one()
        assert (task.completed_by, task.result) == ("sandra", {"answer": "SCA-1"})
        process = session.scalars(select(Process).where(Process.run_id == run_id)).one()
        assert process.data["answer"] == "SCA-1"
    assert completions_of(task.id) == 1
    assert len(todo_mails(pg_mail, "SCALE-1")) == 1


@pytest.mark.parametrize("round_", range(3), ids=lambda n: f"round{n}")
def test_one_completion_sent_to_both_api_servers_at_once_has_one_winner(pg_stack, pg_mail, round_):
    ref = f"SCALE-RACE-{round_}"
    run_id = pg_stack.trigger(DAG_ID, {"ref": ref}, user="rob")
    task = wait_until(lambda: open_task(run_id), timeout=120, what="the task")
    wait_until(lambda: pg_stack.task_states(DAG_ID, run_id)["ask"] == "awaiting_input", what="parking")
    token = pg_stack.token("sandra")
    start = threading.Barrier(2)
    codes: dict[str, int] = {}

    def submit(server: str) -> None:
        start.wait()
        response = httpx.post(
            f"{pg_stack.api_servers[server]}/tempo/api/v1/tasks/{task.id}/complete",
            json={"answers": {"answer": f"RAC-{round_}"}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        codes[server] = response.status_code

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("api-server", "api-server-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes.values()) == [200, 409], codes
    step_ran_once(pg_stack, run_id)
    assert completions_of(task.id) == 1
    assert len(todo_mails(pg_mail, ref)) == 1
