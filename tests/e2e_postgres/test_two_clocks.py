"""Two API servers on PostgreSQL, each running the clock: every reminder and escalation is emailed
exactly once (one clock holds the lease; a timer fires once whoever fires it)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tempo.store.engine import read_session
from tempo.store.models import Task, TaskStatus
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e

RUNS = 4


def test_no_duplicate_sla_emails_with_two_clocks(pg_stack, pg_mail):
    runs = [pg_stack.trigger("e2e_sla", {"ref": f"PG-{n}"}, user="rob") for n in range(RUNS)]

    def all_escalated() -> bool:
        subjects = [m.subject for m in list(pg_mail.messages)]
        return all(f"[Tempo] Escalated: SLA PG-{n}" in subjects for n in range(RUNS))

    wait_until(all_escalated, timeout=180, interval=1, what="every escalation")
    time.sleep(6)  # a duplicate from the other clock would land by now
    subjects = [m.subject for m in list(pg_mail.messages)]
    for n in range(RUNS):
        for kind in ("To do", "Reminder", "Escalated"):
            assert subjects.count(f"[Tempo] {kind}: SLA PG-{n}") == 1, (kind, n, subjects)

    from tempo.actions import complete

    for run_id in runs:
        with read_session() as session:
            task = session.scalars(
                select(Task).where(Task.run_id == run_id, Task.status == TaskStatus.OPEN)
            ).one()
        complete(task.id, actor="sandra", answers={})
    for run_id in runs:
        assert pg_stack.wait_for_run("e2e_sla", run_id) == "success"
