"""``HumanStep``: a step a person performs, waiting on Tempo's task table.

``execute()`` writes the task row (once, however often the step runs), queues the assignment email
through the outbox, then parks the task instance in Airflow's ``awaiting_input`` state, the way
Airflow's own human-in-the-loop operators wait: no worker slot, no trigger, no triggerer. When the
task closes, ``wake_step()`` resumes the step from the server process that closed it (or the clock,
if that wake was lost) and ``execute_complete()`` returns the answer as XCom::

    {"form": {...}, "outcome": "approve", "completed_by": "sandra", "completed_at": "...", "task": 42}

SLA timers do not need the step: the clock fires them from the store.

A stale executor event in Airflow 3.3 (apache/airflow#71580, #72716) can fail a task that resumes
within seconds of parking. ``HumanStep`` therefore retries by default, and a retry of a step whose
task is already completed returns the stored answer at once: the person's answer is never lost and
never asked for twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, BranchMixIn
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout

from tempo.assignment import Assignment, as_assignment
from tempo.forms import DESTRUCTIVE_KEY, Form

if TYPE_CHECKING:
    # Only for annotations: every task run parses its DAG file, and steps without an SLA or a
    # required action need not pay for defining their classes.
    from tempo.required_actions import RequiredAction
    from tempo.sla import SLA
    from tempo.store.models import Task

# Task states as stored; compared as strings so that parsing a DAG file never imports the store.
_WAITING = ("open", "claimed")

log = logging.getLogger(__name__)

_OUTCOME_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_RETRY_DELAY = timedelta(seconds=1)


class StepCancelled(AirflowFailException):
    """The task was cancelled (its process was stopped); retrying would not bring an answer."""


class StepExpired(AirflowFailException):
    """The task ran out of time and its SLA policy says the step fails."""


class StepStoreError(AirflowException):
    """Tempo's store lost track of the task."""


class StepTimedOut(AirflowSensorTimeout):
    """Nobody answered within the step's ``timeout``."""


class HumanStep(BaseSensorOperator, BranchMixIn):
    """Wait for a person to fill in a form (and choose an outcome) in Tempo.

    :param title: what the person sees in the inbox and the email subject (Jinja-templated).
    :param instructions: what to do, shown on the task page and in the email (Jinja-templated).
    :param assign_to: a username, ``Person``, ``Role``, ``Unit``, ``Requester``, ``RequesterManager``,
        ``CounterpartyResponsible`` or a callable ``(context, process) -> username | assignment``.
    :param form: the fields the person fills in.
    :param outcomes: the choices that finish the task (buttons), e.g. ``["approve", "reject"]``;
        empty means one "Complete" action.
    :param branches: outcome -> downstream task id(s) to follow; the other direct downstream tasks
        are skipped. Without it every downstream task runs.
    :param destructive_outcomes: outcome -> the form field that must give its reason, for outcomes
        that undo or refuse something (``{"cancel": "note"}``); pages set them apart and ask to confirm.
    :param sla: due date, reminders and escalations (``tempo.SLA``).
    :param required_action: what must be done before the step may be completed, e.g.
        ``EmailClient(or_attachment=True)``; completion is refused until it is.
    :param mail_template: template in ``include/templates/mail`` for the assignment email.
    :param mail_attachments: send the process's files with the assignment email (a claim to review).
    :param timeout: seconds the step waits at most (default a year); then it fails.
    :param deferrable: wait parked in ``awaiting_input`` (True) or in Airflow's poke/reschedule
        sensor mode, which looks the task up every ``poke_interval`` (False).
    """

    template_fields: Sequence[str] = ("title", "instructions")
    template_fields_renderers = {"instructions": "md"}
    ui_color = "#ffe8a3"

    def __init__(
        self,
        *,
        title: str,
        assign_to: Assignment | str | Any,
        instructions: str = "",
        form: Form | None = None,
        outcomes: Sequence[str] = (),
        branches: Mapping[str, str | Sequence[str]] | None = None,
        destructive_outcomes: Mapping[str, str] | None = None,
        sla: SLA | None = None,
        required_action: RequiredAction | None = None,
        mail_template: str = "task_assigned",
        mail_attachments: bool = False,
        deferrable: bool = True,
        retries: int | None = 6,
        retry_delay: timedelta | float = _RETRY_DELAY,
        retry_exponential_backoff: float = 2.0,
        **kwargs: Any,
    ) -> None:
        # Retry defaults live in the signature, where ``HumanStep.partial()`` finds them too: the
        # scheduler decides on a mapped step's retry from them. They outlast the fast-resume race
        # even on a loaded scheduler: about 1, 2, 4, 8, 16, 32 s apart.
        kwargs.update(
            retries=retries, retry_delay=retry_delay, retry_exponential_backoff=retry_exponential_backoff
        )
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", timedelta(days=365).total_seconds())
        super().__init__(**kwargs)
        import re

        self.title = title
        self.instructions = instructions
        self.assign_to = as_assignment(assign_to)
        self.form = form or Form()
        self.outcomes = list(outcomes)
        for outcome in self.outcomes:
            if not re.match(_OUTCOME_NAME, outcome):
                raise ValueError(f"{self.task_id}: outcome {outcome!r} must be lower_snake_case")
        if len(set(self.outcomes)) != len(self.outcomes):
            raise ValueError(f"{self.task_id}: outcomes must be unique")
        self.branches = {k: [v] if isinstance(v, str) else list(v) for k, v in (branches or {}).items()}
        unknown = set(self.branches) - set(self.outcomes)
        if unknown:
            raise ValueError(f"{self.task_id}: branches for unknown outcomes {sorted(unknown)}")
        if self.branches and set(self.branches) != set(self.outcomes):
            raise ValueError(f"{self.task_id}: branches must name a path for every outcome")
        # Outcomes that undo or refuse (a cancelled request, which tells the customer): each needs its
        # reason in the named field, and the pages show it apart, marked, behind a confirmation.
        self.destructive_outcomes = dict(destructive_outcomes or {})
        for outcome, reason in self.destructive_outcomes.items():
            if outcome not in self.outcomes:
                raise ValueError(f"{self.task_id}: destructive outcome {outcome!r} is not an outcome")
            if reason not in self.form.fields:
                raise ValueError(
                    f"{self.task_id}: the reason of {outcome!r}, {reason!r}, is not a form field"
                )
        self.sla = sla
        if required_action is not None:
            from tempo.required_actions import RequiredAction

            if not isinstance(required_action, RequiredAction):
                raise TypeError(f"{self.task_id}: required_action must be a tempo required action")
        self.required_action = required_action
        self.mail_template = mail_template
        self.mail_attachments = mail_attachments
        self.deferrable = deferrable

    def task_form_schema(self) -> dict[str, Any]:
        """The form as stored with the task, with its destructive outcomes and required action (if
        any) beside its fields."""
        from tempo.catalogs import with_catalog_choices

        schema = with_catalog_choices(self.form).schema()
        if self.destructive_outcomes:
            schema[DESTRUCTIVE_KEY] = self.destructive_outcomes
        if self.required_action is not None:
            from tempo.required_actions import SCHEMA_KEY

            schema[SCHEMA_KEY] = self.required_action.to_dict()
        return schema

    # --- running ------------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from tempo.steps.opening import open_step

        task = open_step(self, context)
        if task.status.value not in _WAITING:
            self.log.info("[tempo] task %s is already %s; not waiting again", task.id, task.status.value)
            return self._finish(context, task)
        if not self.deferrable:
            return super().execute(context)
        self._park(task)

    def _park(self, task: Task) -> None:
        from airflow.sdk.exceptions import TaskAwaitingInput

        self.log.info("[tempo] task %s (%s) awaits input", task.id, task.title)
        # The scheduler resumes the step with a timeout event once ``timeout`` passes (its
        # ``check_awaiting_input_timeouts`` sweep); until then only a wake does.
        raise TaskAwaitingInput(method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("status") == "closed" and event.get("answer"):
            # The wake carries the answer: no store round trip on the way back.
            return self._deliver(context, event["answer"])
        from tempo.store.engine import read_session
        from tempo.store.tasks import TaskNotFound, get_task

        task_pk = event.get("task_pk")
        with read_session() as session:
            try:
                task = get_task(session, int(task_pk)) if task_pk is not None else None
            except TaskNotFound:
                task = None
            if task is None:
                from tempo.steps.opening import step_key
                from tempo.store.tasks import find_task

                task = find_task(session, *step_key(context))
        if task is None:
            raise StepStoreError("Tempo task lost (was the store reset?)")
        if task.status.value in _WAITING:
            if event.get("error_type") == "timeout":
                raise StepTimedOut(f"Tempo task {task.id}: nobody answered within {self.timeout:.0f}s")
            if event.get("status") == "repark":
                self._park(task)  # a step an older Tempo parked on a trigger
        return self._finish(context, task)

    def poke(self, context: Any) -> PokeReturnValue:
        """Reschedule/poke mode (``deferrable=False``): look the task up once per poke."""
        from tempo.steps.opening import step_key
        from tempo.store.engine import read_session
        from tempo.store.tasks import find_task

        with read_session() as session:
            task = find_task(session, *step_key(context))
        if task is None or task.status.value in _WAITING:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, task))

    def _finish(self, context: Any, task: Task) -> dict[str, Any]:
        from tempo.steps.events import answer_of

        if task.status.value == "cancelled":
            raise StepCancelled(f"Tempo task {task.id} was cancelled")
        if task.status.value == "expired":
            raise StepExpired(f"Tempo task {task.id} expired before anyone acted")
        answer = answer_of(task)
        if answer is None:
            raise StepStoreError(f"Tempo task {task.id} is {task.status.value}, not answered")
        return self._deliver(context, answer)

    def _deliver(self, context: Any, answer: Mapping[str, Any]) -> dict[str, Any]:
        """Return the answer as XCom, following the branch of its outcome."""
        answer = dict(answer)
        if self.branches:
            path = self.branches.get(answer["outcome"] or "")
            if path is None:
                raise AirflowFailException(f"outcome {answer['outcome']!r} has no branch")
            # Skipping ends execution with an exception before Airflow pushes the return value.
            context["ti"].xcom_push(key="return_value", value=answer)
            self.do_branch(context, path)
        return answer
