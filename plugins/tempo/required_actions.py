"""Required actions: what a person must have done before a step may be completed.

A step declares one (``HumanStep(required_action=EmailClient(or_attachment=True))``); it is stored
with the task (under ``required_action`` in the task's form schema, so no column is needed) and
checked by ``actions.complete`` for every entry point: the task page, the JSON API, the emailed
link and the CLI all refuse completion with a field error on ``required_action`` until it is done.

``EmailClient``: the task page (or the page behind the emailed link) composes a message to the
client; it goes through the outbox like every Tempo email and is written to the task's history as
``client_emailed``. With ``or_attachment``, a file attached to the task (the document sent some
other way) counts too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tempo.forms import FormErrors, is_email_address

# Declaring a required action in a DAG file stays cheap: the store is imported when a task is checked.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tempo.store.models import HistoryEvent, Process, Task

#: Where the action is kept inside a task's stored form schema.
SCHEMA_KEY = "required_action"
#: The history event that records a message sent to the client.
CLIENT_EMAILED = "client_emailed"

_MAX_SUBJECT = 200
_MAX_TEXT = 20_000


class RequiredAction:
    """Something the step's performer must do before completing it."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def missing(self, session: Session, task: Task) -> str | None:
        """None when the action was done, else what the person still has to do."""
        raise NotImplementedError


@dataclass(frozen=True)
class EmailClient(RequiredAction):
    """The performer must email the client from the task page (or, with ``or_attachment``, attach
    the document to the task) before completing it.

    :param or_attachment: a file attached to the task also satisfies the requirement.
    :param to_field: the process record's field holding the client's address; without it (or when
        it is empty) the address of the process's counterparty is used.
    :param subject: the subject the page suggests (the person may change it).
    """

    kind: ClassVar[str] = "email_client"

    or_attachment: bool = False
    to_field: str | None = None
    subject: str = ""

    def __post_init__(self) -> None:
        if self.to_field is not None and not self.to_field.isidentifier():
            raise ValueError(f"EmailClient to_field must be a field name, not {self.to_field!r}")
        if len(self.subject) > _MAX_SUBJECT:
            raise ValueError(f"EmailClient subject is longer than {_MAX_SUBJECT} characters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "or_attachment": self.or_attachment,
            "to_field": self.to_field,
            "subject": self.subject,
        }

    @property
    def instruction(self) -> str:
        if self.or_attachment:
            return "Email the client from this page, or attach the document, before completing the task."
        return "Email the client from this page before completing the task."

    def missing(self, session: Session, task: Task) -> str | None:
        from sqlalchemy import exists, select

        from tempo.store.models import Attachment, HistoryEvent

        emailed = session.scalar(
            select(exists().where(HistoryEvent.task_id == task.id, HistoryEvent.kind == CLIENT_EMAILED))
        )
        if emailed:
            return None
        if self.or_attachment and session.scalar(select(exists().where(Attachment.task_id == task.id))):
            return None
        return self.instruction

    def client_address(self, session: Session, process: Process) -> str | None:
        if self.to_field:
            value = (process.data or {}).get(self.to_field)
            if isinstance(value, str) and value.strip():
                return value.strip()
        if process.counterparty_code:
            from tempo.store.models import Counterparty

            counterparty = session.get(Counterparty, process.counterparty_code)
            if counterparty is not None and counterparty.email:
                return counterparty.email
        return None


_KINDS: dict[str, type[RequiredAction]] = {EmailClient.kind: EmailClient}


def from_dict(data: dict[str, Any] | None) -> RequiredAction | None:
    if not data:
        return None
    spec = dict(data)
    kind = spec.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown required action {kind!r}")
    return cls(**spec)


def of_task(task: Task) -> RequiredAction | None:
    return from_dict((task.form_schema or {}).get(SCHEMA_KEY))


def check(session: Session, task: Task) -> str | None:
    """What is still missing before ``task`` may be completed (None: nothing)."""
    action = of_task(task)
    return action.missing(session, task) if action is not None else None


@dataclass(frozen=True)
class ClientEmail:
    """What the task page shows about the client email: where it goes, what was sent so far."""

    action: EmailClient
    to: str | None
    sent: list[HistoryEvent]
    missing: str | None


def client_email_view(session: Session, task: Task) -> ClientEmail | None:
    from sqlalchemy import select

    from tempo.store.models import HistoryEvent, Process

    action = of_task(task)
    if not isinstance(action, EmailClient):
        return None
    process = session.get_one(Process, task.process_id)
    sent = list(
        session.scalars(
            select(HistoryEvent)
            .where(HistoryEvent.task_id == task.id, HistoryEvent.kind == CLIENT_EMAILED)
            .order_by(HistoryEvent.at, HistoryEvent.id)
        )
    )
    return ClientEmail(
        action=action,
        to=action.client_address(session, process),
        sent=sent,
        missing=action.missing(session, task),
    )


def email_client(task_pk: int, *, actor: str, subject: str, text: str) -> HistoryEvent:
    """Send ``actor``'s message to the task's client through the outbox and record it on the task.

    Raises ``FormErrors`` (``subject``, ``text``, ``to``, ``_form``), ``TaskNotFound`` or
    ``TaskConflict``: the task is closed, or the same message was already sent for it (a double
    submission sends one email; of concurrent ones, one wins).
    """
    from sqlalchemy import select

    from tempo.mail.outbox import deliver_now, enqueue
    from tempo.mail.render import render_mail
    from tempo.store.engine import write_session
    from tempo.store.models import ACTIVE_TASK_STATUSES, HistoryEvent, OutboxMessage, Process
    from tempo.store.tasks import TaskConflict, get_task, record_event

    subject = " ".join(str(subject or "").split())
    text = str(text or "").strip()
    problems: dict[str, str] = {}
    if not subject:
        problems["subject"] = "Write a subject."
    elif len(subject) > _MAX_SUBJECT:
        problems["subject"] = f"Keep the subject under {_MAX_SUBJECT} characters."
    if not text:
        problems["text"] = "Write the message."
    elif len(text) > _MAX_TEXT:
        problems["text"] = f"Keep the message under {_MAX_TEXT:,} characters."
    with write_session() as session:
        task = get_task(session, task_pk)
        if task.status not in ACTIVE_TASK_STATUSES:
            raise TaskConflict(task_pk, f"This task is already {task.status.value}.")
        action = of_task(task)
        if not isinstance(action, EmailClient):
            raise FormErrors({"_form": "This task has no client to email."})
        process = session.get_one(Process, task.process_id)
        to = action.client_address(session, process)
        if to is None:
            problems["to"] = "The process names no client address (no counterparty email, no client email)."
        elif not is_email_address(to):
            problems["to"] = f"The client address {to!r} is not an email address."
        if problems:
            raise FormErrors(problems)
        assert to is not None
        # The message's content is its identity: the same words to the same task go out once.
        digest = hashlib.sha256(f"{to}\n{subject}\n{text}".encode()).hexdigest()[:40]
        key = f"task:{task.id}:client:{digest}"
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedup_key == key)) is not None:
            raise TaskConflict(task_pk, "This message was already sent to the client.")
        mail = render_mail(
            "client_message",
            {"process": process, "task": task, "subject": subject, "message": text},
            session=session,
        )
        message = enqueue(session, dedup_key=key, to=[to], mail=mail, process_id=process.id, task_id=task.id)
        session.flush()
        # A concurrent identical submission may have queued it first (enqueue then returns its row).
        recorded = session.scalars(
            select(HistoryEvent.details).where(
                HistoryEvent.task_id == task.id, HistoryEvent.kind == CLIENT_EMAILED
            )
        )
        if any(details.get("message") == message.id for details in recorded):
            raise TaskConflict(task_pk, "This message was already sent to the client.")
        event = record_event(
            session,
            process_id=process.id,
            task_id=task.id,
            kind=CLIENT_EMAILED,
            actor=actor,
            details={"to": to, "subject": subject, "message": message.id},
        )
        session.flush()
    deliver_now([key])
    return event
