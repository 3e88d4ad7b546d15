"""The seed process end to end, with real Airflow components and a real SMTP server."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tempo.forms import Form, FormErrors
from tempo.store.engine import read_session, write_session
from tempo.store.models import OutboxMessage, OutboxStatus, Process, ProcessStatus, Task, TaskStatus
from tempo.store.tasks import complete_task
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


def open_task_for(run_id: str, task_id: str) -> Task | None:
    with read_session() as session:
        return session.scalar(
            select(Task).where(Task.run_id == run_id, Task.task_id == task_id, Task.status == TaskStatus.OPEN)
        )


def process_of(dag_id: str, run_id: str) -> Process:
    with read_session() as session:
        return session.scalars(
            select(Process).where(Process.dag_id == dag_id, Process.run_id == run_id)
        ).one()


def mails_for(mail, rma: str):
    return [m for m in mail.messages if rma in m.subject]


def test_out_of_warranty_rma_gets_a_sales_order(airflow_stack, mail):
    rma = "RMA-40001"
    run_id = airflow_stack.trigger(
        "rma_sales_order",
        {"rma_number": rma, "customer": "ACME Corporation", "part": "Pump P-20", "in_warranty": False},
        user="rob",
    )
    task = wait_until(lambda: open_task_for(run_id, "create_sales_order"), what="Sandra's task")
    assert process_of("rma_sales_order", run_id).current_step == task.title
    assert task.candidate_role == "customer_service"
    assert task.title == f"Create a sales order for {rma}"
    assert "ACME Corporation" in task.instructions

    to_sandra = wait_until(lambda: mails_for(mail, rma), what="the assignment email")[0]
    assert to_sandra.envelope_to == ("sandra@example.com",)
    assert "To do: Create a sales order" in to_sandra.subject
    text = to_sandra.body("plain")
    link = re.search(r"(http://\S+/tempo/act/\S+)", text).group(1)
    assert link.startswith(airflow_stack.base_url + "/tempo/act/")
    assert "Pump P-20" in text and "Hello Sandra Service" in text
    assert "<a href=" in to_sandra.body("html")

    # Sandra's answer goes through the task's own form: an invalid S/O number is refused.
    with pytest.raises(FormErrors) as invalid:
        Form.from_schema(task.form_schema).validate({"so_number": "12345"})
    assert "so_number" in invalid.value.errors
    answer = Form.from_schema(task.form_schema).validate({"so_number": "SO-424242"})
    with write_session() as session:
        complete_task(session, task.id, actor="sandra", result=answer, expected_version=task.version)

    assert airflow_stack.wait_for_run("rma_sales_order", run_id) == "success"

    # The RMA record carries the S/O number.
    process = process_of("rma_sales_order", run_id)
    assert process.status == ProcessStatus.SUCCESS and process.finished_at is not None
    assert process.requester == "rob" and process.business_key == rma
    assert process.data["so_number"] == "SO-424242" and process.data["so_created_by"] == "sandra"

    # Sandra, then Rob, then John; each message carries what its reader needs.
    messages = wait_until(
        lambda: len(mails_for(mail, rma)) >= 3 and mails_for(mail, rma), what="three emails"
    )
    assert [m.envelope_to for m in messages] == [
        ("sandra@example.com",),
        ("rob@example.com",),
        ("john@example.com",),
    ]
    to_rob, to_john = messages[1], messages[2]
    assert "SO-424242" in to_rob.subject and rma in to_rob.subject
    assert "Created by:   Sandra Service" in to_rob.body("plain")
    assert "Sales order:  SO-424242" in to_rob.body("plain") and "Pump P-20" in to_rob.body("plain")
    assert "repair can start" in to_john.subject
    john_text = to_john.body("plain")
    assert "SO-424242" in john_text and "ACME Corporation" in john_text
    assert "Requested by: Rob Engineer" in john_text

    with read_session() as session:
        outbox = session.scalars(select(OutboxMessage).where(OutboxMessage.process_id == process.id)).all()
        assert {m.status for m in outbox} == {OutboxStatus.SENT}
        assert len(outbox) == 3


def test_in_warranty_rma_needs_no_sales_order(airflow_stack, mail):
    rma = "RMA-40002"
    run_id = airflow_stack.trigger(
        "rma_sales_order",
        {"rma_number": rma, "customer": "Globex Ltd", "part": "Valve", "in_warranty": True},
        user="rob",
    )
    assert airflow_stack.wait_for_run("rma_sales_order", run_id) == "success"
    states = airflow_stack.task_states("rma_sales_order", run_id)
    assert states["create_sales_order"] == "skipped" and states["repair_can_start"] == "success"
    messages = wait_until(lambda: mails_for(mail, rma), what="John's email")
    assert [m.envelope_to for m in messages] == [("john@example.com",)]
    assert "in warranty, no sales order needed" in messages[0].body("plain")
    with read_session() as session:
        assert session.scalar(select(Task).where(Task.run_id == run_id)) is None


def test_failed_run_cancels_its_open_task_and_a_clear_reopens_it(airflow_stack, mail):
    run_id = airflow_stack.trigger("e2e_quick_step", {"ref": "FAIL-1"}, user="rob")
    task = wait_until(lambda: open_task_for(run_id, "ask"), what="the open task")

    response = airflow_stack.api(
        "PATCH", f"/api/v2/dags/e2e_quick_step/dagRuns/{run_id}", json={"state": "failed"}
    )
    assert response.status_code == 200, response.text

    def cancelled():
        with read_session() as session:
            return session.get_one(Task, task.id).status == TaskStatus.CANCELLED

    wait_until(cancelled, what="the task to be cancelled")
    assert process_of("e2e_quick_step", run_id).status == ProcessStatus.FAILED

    # Clearing the step runs it again: the same task row comes back, no duplicate.
    response = airflow_stack.api(
        "POST",
        "/api/v2/dags/e2e_quick_step/clearTaskInstances",
        json={
            "dry_run": False,
            "task_ids": ["ask"],
            "dag_run_id": run_id,
            "only_failed": False,
            "reset_dag_runs": True,
            "include_downstream": True,
        },
    )
    assert response.status_code == 200, response.text
    reopened = wait_until(lambda: open_task_for(run_id, "ask"), what="the reopened task")
    assert reopened.id == task.id and reopened.version > task.version
    with read_session() as session:
        assert len(session.scalars(select(Task).where(Task.run_id == run_id)).all()) == 1
    with write_session() as session:
        complete_task(session, reopened.id, actor="sandra", result={"answer": "ABC-1"})
    assert airflow_stack.wait_for_run("e2e_quick_step", run_id) == "success"
    assert airflow_stack.task_states("e2e_quick_step", run_id) == {"ask": "success", "keep": "success"}
    assert process_of("e2e_quick_step", run_id).data["answer"] == "ABC-1"


@pytest.mark.parametrize(
    ("outcome", "taken", "skipped"),
    [("approve", "on_approve", "on_reject"), ("reject", "on_reject", "on_approve")],
)
def test_the_chosen_outcome_picks_the_path(airflow_stack, outcome, taken, skipped):
    from tempo.actions import complete

    run_id = airflow_stack.trigger("e2e_branching", {"ref": f"B-{outcome}"}, user="rob")
    task = wait_until(lambda: open_task_for(run_id, "review"), what="the review task")
    assert task.assignee == "helen" and task.outcomes == ["approve", "reject"]
    complete(task.id, actor="helen", answers={"reason": "price too high"}, outcome=outcome)
    assert airflow_stack.wait_for_run("e2e_branching", run_id) == "success"
    states = airflow_stack.task_states("e2e_branching", run_id)
    assert (states[taken], states[skipped]) == ("success", "skipped")
    data = process_of("e2e_branching", run_id).data
    assert data["path"] == ("approved" if outcome == "approve" else "rejected")
