"""Test-only process: a human step that waits the way Tempo's steps did before they parked in
``awaiting_input``, deferred on a ``HumanStepTrigger`` row with the kwargs an older Tempo stored.
It stands for the steps still waiting when a deployment upgrades.

(Airflow's safe-mode DAG discovery only parses files that mention both "airflow" and "dag".)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tempo import Form, HumanStep, Person, Text, process
from tempo.steps.trigger import TRIGGER_CLASSPATH, HumanStepTrigger

if TYPE_CHECKING:
    from tempo.store.models import Task


class StoredBeforeTheUpgrade(HumanStepTrigger):
    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_CLASSPATH, {"task_pk": self.task_pk, "poll_interval": None, "has_sla": True}


class DeferredStep(HumanStep):
    """Today's step, except that its first wait defers as an older Tempo's did.

    A retry (a stale executor event can fail a step resumed seconds after it deferred) still returns
    the stored answer, and a step resumed by its stored trigger parks the new way.
    """

    waits_as_before = False

    def execute(self, context: Any) -> Any:
        self.waits_as_before = True
        return super().execute(context)

    def _park(self, task: Task) -> None:
        if not self.waits_as_before:
            return super()._park(task)
        self.defer(trigger=StoredBeforeTheUpgrade(task_pk=task.id), method_name="execute_complete")


with process("e2e_deferred_step", title="Deferred step", start_form=Form(ref=Text())) as dag:
    DeferredStep(
        task_id="ask",
        title="Deferred {{ params.ref }}",
        assign_to=Person("sandra"),
        form=Form(answer=Text(required=False)),
    )
