"""``HumanStepTrigger``, kept so that steps deferred by an older Tempo resume after an upgrade.

Tempo once parked every waiting step on a trigger. Those trigger rows are still in Airflow's
database after an upgrade, with their kwargs (``task_pk``, and the retired ``poll_interval`` and
``has_sla``). A triggerer that runs one now fires at once: the step reads its task and either
finishes with the answer or parks in ``awaiting_input`` like every step does today, and the
triggerer slot is free again. Nothing defers to this trigger any more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from tempo.steps.events import StepReparkEvent

TRIGGER_CLASSPATH = "tempo.steps.trigger.HumanStepTrigger"


class HumanStepTrigger(BaseTrigger):
    """Fires at once with a ``StepReparkEvent`` for task ``task_pk``."""

    def __init__(self, task_pk: int, **_retired: Any) -> None:
        # ``**_retired``: the kwargs older Tempos stored (poll_interval, has_sla) still load.
        super().__init__()
        self.task_pk = int(task_pk)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_CLASSPATH, {"task_pk": self.task_pk}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event: StepReparkEvent = {"status": "repark", "task_pk": self.task_pk}
        yield TriggerEvent(event)
