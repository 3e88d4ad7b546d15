"""``NotifyStep``: email people from a template, e.g. the result to the requester."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from tempo.assignment import Assignment, AssignmentError, as_assignment


class NotifyStep(BaseOperator):
    """Send ``template`` (from ``include/templates/mail``) to each person ``to`` names.

    :param to: one or more of: a username, ``Person``, ``Role``, ``Unit``, ``Requester``,
        ``RequesterManager``, ``CounterpartyResponsible``.
    :param template: the mail template's name (``rma_so_created`` for ``rma_so_created.j2``).
    :param context: extra values for the template; Jinja-templated, so they may pull XCom.

    The template sees ``process`` (its ``data`` is the business record), ``person`` (the reader),
    ``data`` and ``context``'s values. Messages go through the outbox with one dedup key per step
    instance and reader: retries of this step never send a message twice.
    """

    template_fields: Sequence[str] = ("context",)
    ui_color = "#d7ecff"

    def __init__(
        self,
        *,
        to: Assignment | str | Sequence[Assignment | str],
        template: str,
        context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        targets = [to] if isinstance(to, Assignment | str) else list(to)
        if not targets:
            raise ValueError(f"{self.task_id}: a notification needs at least one recipient")
        self.to = [as_assignment(t) for t in targets]
        self.template = template
        self.context = dict(context or {})

    def execute(self, context: Any) -> list[str]:
        from tempo.mail.outbox import deliver_now, enqueue
        from tempo.mail.render import render_mail
        from tempo.runs import process_of_dag_run
        from tempo.steps.opening import step_key
        from tempo.store.engine import write_session

        dag_id, run_id, task_id, map_index = step_key(context)
        keys = []
        with write_session() as session:
            process = process_of_dag_run(session, context.get("dag"), context["dag_run"])
            people: dict[str, Any] = {}
            for target in self.to:
                try:
                    resolved = target.resolve(session, process, context)
                except AssignmentError as exc:
                    raise AirflowException(f"{self.task_id}: cannot find the recipient: {exc}") from None
                people.update({p.username: p for p in resolved.recipients(session)})
            if not people:
                raise AirflowException(f"{self.task_id}: nobody to notify")
            for person in people.values():
                key = f"notify:{dag_id}:{run_id}:{task_id}:{map_index}:{person.username}"
                values = {"process": process, "person": person, "data": process.data, **self.context}
                mail = render_mail(self.template, values, session=session)
                enqueue(session, dedup_key=key, to=[person.email], mail=mail, process_id=process.id)
                keys.append(key)
        deliver_now(keys)
        self.log.info("[tempo] notified %s", ", ".join(sorted(people)))
        return sorted(people)
