"""Small builders for store rows used across tests."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy.orm import Session

from tempo.sla import SLA, next_timer_at
from tempo.store.processes import ensure_process
from tempo.store.tasks import TaskSpec, open_task

_runs = itertools.count(1)


def make_process(session: Session, **overrides: Any):
    n = next(_runs)
    fields = {"dag_id": "demo", "run_id": f"run-{n}", "template": "demo", "title": f"Demo {n}"}
    fields.update(overrides)
    process, _ = ensure_process(session, **fields)
    return process


def make_task(session: Session, process=None, **overrides: Any):
    process = process or make_process(session)
    fields = {
        "process_id": process.id,
        "dag_id": process.dag_id,
        "run_id": process.run_id,
        "task_id": "step",
        "map_index": -1,
        "title": "Do the thing",
        "form_schema": {"fields": [{"name": "answer", "type": "text"}]},
    }
    fields.update(overrides)
    if fields.get("sla_policy") and fields.get("due_at") and "sla_next_at" not in fields:
        # As a step opens it: the clock finds the task by its first timer.
        fields["sla_next_at"] = next_timer_at(SLA.from_dict(fields["sla_policy"]), fields["due_at"])
    task, _ = open_task(session, TaskSpec(**fields))
    session.flush()
    return task
