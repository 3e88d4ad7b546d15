"""Starting a process from the start form or the JSON API: one process per business key (an RMA
number, say) unless the person asks for another, and the process row recorded at once so that the
confirmation can lead to the new process's page."""

from __future__ import annotations

import secrets
from typing import Any

from tempo.runs import TemplateInfo, process_for_run
from tempo.store.engine import write_session
from tempo.store.models import Process, utcnow
from tempo.store.processes import forget_process, processes_with_key
from tempo.web import airflow_data


class BusinessKeyTaken(Exception):
    """Processes of the template already carry this business key; nothing was started."""

    def __init__(self, field: str, key: str, processes: list[Process]) -> None:
        super().__init__(f"A process for {key} already exists: start another only if you mean to.")
        self.field = field
        self.key = key
        self.processes = processes


def start(template: TemplateInfo, conf: dict[str, Any], user_name: str, *, allow_same_key: bool) -> Process:
    """Start a run of ``template`` with the validated ``conf``; return its process row.

    Raises ``BusinessKeyTaken`` when a running or finished process of the template has the same
    business key, unless ``allow_same_key``.
    """
    field = template.business_key
    raw_key = conf.get(field) if field else None
    key = None if raw_key in (None, "") else str(raw_key)
    run_id = f"manual__{utcnow().isoformat()}_{secrets.token_hex(3)}"
    # The row is recorded before the run, in the transaction that checks the key: the key is locked
    # that long only, never while Airflow creates the run (a scheduler's listener may be waiting
    # for the store while it holds Airflow's database). The listener then finds the row.
    with write_session() as session:
        if field and key is not None and not allow_same_key:
            same = processes_with_key(session, template.dag_id, key)
            if same:
                session.expunge_all()  # still readable once the transaction rolls back
                raise BusinessKeyTaken(field, key, same)
        process = process_for_run(session, template, run_id, conf, user_name)
    try:
        airflow_data.start_process(template.dag_id, conf, user_name, run_id=run_id)
    except BaseException:
        with write_session() as session:
            forget_process(session, process.id)
        raise
    return process
