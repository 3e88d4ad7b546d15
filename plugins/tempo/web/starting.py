"""Starting a process from the start form or the JSON API: one process per business key (an RMA
number, say) unless the person asks for another, and the process row recorded at once so that the
confirmation can lead to the new process's page."""

from __future__ import annotations

from typing import Any

from tempo.steps.process import TemplateInfo
from tempo.store.engine import write_session
from tempo.store.models import Process
from tempo.store.processes import processes_with_key
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
    key = conf.get(field) if field else None
    with write_session() as session:
        if field and key not in (None, "") and not allow_same_key:
            same = processes_with_key(session, template.dag_id, str(key))
            if same:
                session.expunge_all()  # still readable once the transaction rolls back
                raise BusinessKeyTaken(field, str(key), same)
        return airflow_data.start_recorded_process(session, template.dag_id, conf, user_name)
