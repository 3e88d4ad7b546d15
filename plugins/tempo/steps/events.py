"""The typed payloads a waiting step is resumed with, whoever resumes it.

A waiting ``HumanStep`` is parked in Airflow's ``awaiting_input`` state. Three things resume it,
each handing ``HumanStep.execute_complete`` one of these events:

- ``wake_step()`` (``tempo.steps.resume``), when its task closes: ``StepClosedEvent``, carrying the
  answer so that the resumed step needs no store round trip;
- Airflow's scheduler, when the step's ``timeout`` passes (``check_awaiting_input_timeouts``):
  ``StepTimedOutEvent``, Airflow's own shape;
- a ``HumanStepTrigger`` stored by an older Tempo, once a triggerer runs it: ``StepReparkEvent``,
  after which the step parks the new way.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class StepAnswer(TypedDict):
    """What the person answered: the step's XCom."""

    form: dict[str, Any]
    outcome: str | None
    completed_by: str | None
    completed_at: str | None
    task: int


class StepClosedEvent(TypedDict):
    """The task left the inboxes: completed, rejected, cancelled or expired."""

    status: Literal["closed"]
    task_pk: int
    task_status: str
    version: int
    #: Set for completed and rejected tasks.
    answer: StepAnswer | None


class StepTimedOutEvent(TypedDict):
    """What Airflow's scheduler resumes an ``awaiting_input`` task with once its timeout passes."""

    error: str
    error_type: Literal["timeout"]


class StepReparkEvent(TypedDict):
    """A step deferred by an older Tempo: read the task, and wait the new way if it is still open."""

    status: Literal["repark"]
    task_pk: int


def answer_of(task: Any) -> StepAnswer | None:
    """The answer of a closed task row (or row-like result), None unless completed or rejected."""
    if str(getattr(task.status, "value", task.status)) not in ("completed", "rejected"):
        return None
    return {
        "form": task.result or {},
        "outcome": task.outcome,
        "completed_by": task.completed_by,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "task": task.id,
    }
