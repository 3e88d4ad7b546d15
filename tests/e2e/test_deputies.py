"""Deputies end to end, with real Airflow components and a real SMTP server: Sandra is away, Fiona
stands in, and Rob's RMA request reaches Fiona, who answers it for Sandra."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from tempo.store.engine import read_session, write_session
from tempo.store.models import Absence, HistoryEvent, Process
from tests.e2e.conftest import open_task, wait_until

pytestmark = pytest.mark.e2e


def test_an_rma_request_reaches_the_deputy_who_answers_it_for_sandra(airflow_stack, mail):
    today = datetime.now(UTC).date()
    away = {
        "person": "sandra",
        "deputy": "fiona",
        "first_day": str(today - timedelta(days=1)),
        "last_day": str(today + timedelta(days=1)),
    }
    recorded = airflow_stack.api("POST", "/tempo/api/v1/absences", json=away, user="sandra")
    assert recorded.status_code == 201, recorded.text
    try:
        rma = "RMA-40077"
        run_id = airflow_stack.trigger(
            "rma_sales_order",
            {"rma_number": rma, "customer": "Globex Ltd", "part": "Pump P-20", "in_warranty": False},
            user="rob",
        )
        task = wait_until(lambda: open_task(run_id, "create_sales_order"), what="the RMA's task")
        assert (task.assignee, task.acting_for) == ("fiona", "sandra")

        to_fiona = wait_until(lambda: [m for m in mail.messages if rma in m.subject], what="the email")[0]
        assert to_fiona.envelope_to == ("fiona@example.com",)
        assert "To do for Sandra Service" in to_fiona.subject
        assert "for Sandra Service, who is away" in to_fiona.body("plain")
        assert re.search(r"http://\S+/tempo/act/\S+", to_fiona.body("plain"))
        inbox = airflow_stack.api("GET", "/tempo/api/v1/tasks", user="fiona").json()
        assert [(t["id"], t["acting_for"]) for t in inbox if t["run_id"] == run_id] == [(task.id, "sandra")]

        done = airflow_stack.api(
            "POST",
            f"/tempo/api/v1/tasks/{task.id}/complete",
            json={"answers": {"so_number": "SO-777001"}, "expected_version": task.version},
            user="fiona",
        )
        assert done.status_code == 200, done.text
        assert airflow_stack.wait_for_run("rma_sales_order", run_id) == "success"

        with read_session() as session:
            process = session.scalars(select(Process).where(Process.run_id == run_id)).one()
            completed = session.scalars(
                select(HistoryEvent).where(HistoryEvent.task_id == task.id, HistoryEvent.kind == "completed")
            ).one()
        assert (completed.actor, completed.details["for"]) == ("fiona", "sandra")
        assert process.data["so_number"] == "SO-777001" and process.data["so_created_by"] == "fiona"
        # The task's page says so in its history, to Sandra too, who still reads it while away.
        page = airflow_stack.api("GET", f"/tempo/tasks/{task.id}", user="sandra")
        assert page.status_code == 200 and "for Sandra Service" in page.text
    finally:
        # The stack is shared with the package's other tests: Sandra is back for them.
        with write_session() as session:
            session.execute(delete(Absence).where(Absence.id == recorded.json()["id"]))
