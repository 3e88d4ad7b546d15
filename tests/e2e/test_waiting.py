"""Waiting steps hold nothing in Airflow: with a triggerer that runs two triggers at most, and with
no triggerer at all, ten waiting steps each get their reminder and their escalation, once each."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tempo.store.engine import read_session
from tempo.store.models import Task, TaskStatus
from tests.e2e.conftest import trigger_classpaths, wait_until

pytestmark = pytest.mark.e2e

STEPS = 10


def subjects(mail, refs: list[str]) -> list[str]:
    return [m.subject for m in list(mail.messages) if any(m.subject.endswith(f" {ref}") for ref in refs)]


@pytest.fixture(params=["triggerer-capacity-2", "no-triggerer"])
def triggerers(request, airflow_stack):
    """The shared stack's triggerer restarted with capacity 2, or stopped; restored afterwards."""
    airflow_stack.kill("triggerer")
    if request.param == "triggerer-capacity-2":
        airflow_stack.start_component(
            "triggerer",
            ["triggerer", "--skip-serve-logs"],
            {**airflow_stack.env(), "AIRFLOW__TRIGGERER__CAPACITY": "2"},
            airflow_stack.home / "component-logs",
        )
    yield request.param
    if "triggerer" in airflow_stack.processes:
        airflow_stack.kill("triggerer")
    airflow_stack.restart("triggerer")


def test_every_reminder_and_escalation_arrives_once_whatever_the_triggerers(airflow_stack, mail, triggerers):
    refs = [f"{triggerers}-{n}" for n in range(STEPS)]
    run_ids = [airflow_stack.trigger("e2e_sla", {"ref": ref}, user="rob") for ref in refs]

    def parked() -> bool:
        states = [airflow_stack.task_states("e2e_sla", run_id)["ask"] for run_id in run_ids]
        return states.count("awaiting_input") == STEPS

    wait_until(parked, timeout=240, interval=1, what=f"{STEPS} steps awaiting input")
    # Waiting holds no trigger (and so no triggerer slot).
    assert trigger_classpaths(airflow_stack) == []

    expected = sorted(
        [f"[Tempo] Reminder: SLA {ref}" for ref in refs] + [f"[Tempo] Escalated: SLA {ref}" for ref in refs]
    )

    def arrived() -> bool:
        return len([s for s in subjects(mail, refs) if "To do" not in s]) >= len(expected)

    wait_until(arrived, timeout=240, interval=1, what="every reminder and escalation")
    time.sleep(6)  # room for a duplicate to show up
    assert sorted(s for s in subjects(mail, refs) if "To do" not in s) == expected

    from tempo.actions import complete

    with read_session() as session:
        tasks = session.scalars(
            select(Task).where(Task.run_id.in_(run_ids), Task.status == TaskStatus.OPEN)
        ).all()
    assert len(tasks) == STEPS
    for task in tasks:
        complete(task.id, actor="sandra", answers={})
    for run_id in run_ids:
        assert airflow_stack.wait_for_run("e2e_sla", run_id, timeout=240) == "success"
