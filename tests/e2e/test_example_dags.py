"""Every example process in ``dags/`` parses in the real dag-processor and runs to success, with every
human step answered through its own form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tempo.forms import Form
from tempo.store.engine import read_session, write_session
from tempo.store.models import ACTIVE_TASK_STATUSES, Task
from tempo.store.tasks import complete_task
from tests.conftest import REPO
from tests.e2e.conftest import dag_ids_in, wait_until

pytestmark = pytest.mark.e2e

#: How each example is started. A DAG added to dags/ without an entry here fails the test below.
EXAMPLE_STARTS = {
    "rma_sales_order": {"rma_number": "RMA-77001", "customer": "ACME", "part": "Gear", "in_warranty": False},
    "customer_request": {
        "counterparty_name": "Example Co",
        "counterparty_email": "desk@example-co.example",
        "request_type": "invoice_question",
        "subject": "Invoice INV-1 twice",
        "description": "We were billed twice.",
        "request_params": {"invoice_number": "INV-1"},
    },
}

#: Outcomes other than a step's first: the customer request's example run takes the cancel path (the
#: full path, dispute and all, is tests/e2e/test_customer_request.py).
EXAMPLE_OUTCOMES = {("customer_request", "take_request"): "cancel"}

EXAMPLE_ANSWERS = {
    "text": "SO-100200",
    "number": 1,
    "date": "2026-12-01",
    "email": "x@example.com",
    "checkbox": True,
    "file": None,
}


def answer_for(form_schema: dict) -> dict:
    form = Form.from_schema(form_schema)
    answers = {}
    for name, spec in form.fields.items():
        schema = spec.schema()
        answers[name] = (
            schema["choices"][0] if schema["type"] == "choice" else EXAMPLE_ANSWERS[schema["type"]]
        )
    return form.validate(answers)


def test_no_import_errors(airflow_stack):
    response = airflow_stack.api("GET", "/api/v2/importErrors")
    assert response.status_code == 200
    assert response.json()["total_entries"] == 0, response.json()


def test_every_example_has_a_start():
    from tests.e2e.test_shipped_templates import SHIPPED_STARTS

    assert sorted(dag_ids_in(REPO / "dags")) == sorted(EXAMPLE_STARTS | SHIPPED_STARTS)


@pytest.mark.parametrize("dag_id", sorted(EXAMPLE_STARTS))
def test_example_runs_to_success(airflow_stack, dag_id):
    run_id = airflow_stack.trigger(dag_id, EXAMPLE_STARTS[dag_id], user="rob")
    answered: set[int] = set()

    def step_or_done():
        with read_session() as session:
            open_tasks = session.scalars(
                select(Task).where(Task.run_id == run_id, Task.status.in_(list(ACTIVE_TASK_STATUSES)))
            ).all()
        for task in open_tasks:
            if task.id not in answered:
                with write_session() as session:
                    outcome = EXAMPLE_OUTCOMES.get((dag_id, task.task_id)) or (
                        task.outcomes[0] if task.outcomes else None
                    )
                    complete_task(
                        session, task.id, actor="sandra", result=answer_for(task.form_schema), outcome=outcome
                    )
                answered.add(task.id)
        return airflow_stack.run_state(dag_id, run_id) in ("success", "failed")

    wait_until(step_or_done, timeout=300, interval=0.5, what=f"{dag_id} to finish")
    assert airflow_stack.run_state(dag_id, run_id) == "success"
