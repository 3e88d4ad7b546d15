"""Test-only process: a human step that waits the way Tempo's steps did before they parked in
``awaiting_input``, deferred on a ``HumanStepTrigger`` row with the kwargs an older Tempo stored.
It stands for the steps still waiting when a deployment upgrades.

(Airflow's safe-mode DAG discovery only parses files that mention both "airflow" and "dag".)
"""

from __future__ import annotations

from typing import Any

from tempo import Form, HumanStep, Person, Text, process
from tempo.steps.trigger import TRIGGER_CLASSPATH, HumanStepTrigger


class StoredBeforeTheUpgrade(HumanStepTrigger):
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_CLASSPATH, {"task_pk": self.task_pk, "poll_interval": None, "has_sla": True}


class DeferredStep(HumanStep):
    def execute(self, context: Any) -> Any:
        from tempo.steps.opening import open_step

        task = open_step(self, context)
        self.defer(trigger=StoredBeforeTheUpgrade(task_pk=task.id), method_name="execute_complete")


with process("e2e_deferred_step", title="Deferred step", start_form=Form(ref=Text())) as dag:
    DeferredStep(
        task_id="ask",
        title="Deferred {{ params.ref }}",
        assign_to=Person("sandra"),
        form=Form(answer=Text(required=False)),
    )
