"""Pieces the pages, the API and the emailed-link pages share: templates, loading a task with its
context, turning store and form errors into HTTP answers."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from tempo import actions, config, directory, reports, wording
from tempo.absences import DAG_ID_PATTERN, AbsenceSpec
from tempo.forms import MAX_ATTACHMENT_BYTES, Form, FormErrors, destructive_outcomes
from tempo.store.models import (
    ACTIVE_TASK_STATUSES,
    MAX_ID,
    Absence,
    Attachment,
    HistoryEvent,
    Person,
    Process,
    Role,
    Task,
    TaskStatus,
    Unit,
    utcnow,
)
from tempo.store.tasks import TaskNotFound, get_task, inbox_tasks
from tempo.web import URL_PREFIX, airflow_data

#: The one script a page runs: it gives the page Airflow's light or dark theme when the page sits in
#: Airflow's frame (Airflow marks its ``<html>`` with the class ``light`` or ``dark`` and keeps it in
#: step with the person's choice), else the browser's preference. The policy below allows it by its
#: hash, so no other script can run, injected or not.
THEME_SCRIPT = (
    "(function(){var root=document.documentElement,airflow=null;"
    "try{if(window.parent!==window)airflow=window.parent.document.documentElement}catch(e){}"
    "function follow(){var dark=airflow&&/\\b(dark|light)\\b/.test(airflow.className)"
    "?airflow.classList.contains('dark'):matchMedia('(prefers-color-scheme: dark)').matches;"
    "root.classList.toggle('dark',dark)}"
    "follow();if(airflow)new MutationObserver(follow)"
    ".observe(airflow,{attributes:true,attributeFilter:['class']})"
    "})();"
)
_THEME_SCRIPT_HASH = base64.b64encode(hashlib.sha256(THEME_SCRIPT.encode()).digest()).decode()

#: Never leak the page (and the signed token in its URL) to other sites.
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{_THEME_SCRIPT_HASH}'; "
    "style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'self'; "
    "base-uri 'none'",
    "Cache-Control": "no-store",
}


#: An id of a store row in a URL: a bigger one than any row can have is a 422, not a driver error.
StoreId = Annotated[int, PathParam(ge=1, le=MAX_ID)]

_VERSION = re.compile(r"\d{1,10}", re.ASCII)


def posted_version(data: dict[str, Any]) -> int | None:
    """The task version a page's form was rendered with (its hidden ``version`` field), if sent.

    Raises ``FormErrors`` for anything but ASCII digits within the id range: ``str.isdigit`` also
    takes "²", which ``int`` then refuses.
    """
    raw = data.get("version")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not _VERSION.fullmatch(raw) or int(raw) > MAX_ID:
        raise FormErrors({"_form": "The form was damaged on its way; reload the page and answer again."})
    return int(raw)


#: A counterparty's own pages: its request's status and its answer to a result.
_COUNTERPARTY_LINK = re.compile(rf"{re.escape(URL_PREFIX)}/(?:requests|respond)/")


def staff_record(data: dict[str, Any] | None) -> dict[str, Any]:
    """A process record as staff pages show it (the ``staff_record`` filter of the templates):
    without any value that carries a counterparty's link, such as the ``status_link`` the request
    keeps for its emails. Whoever holds that link reads and answers as the counterparty."""
    return {
        key: value
        for key, value in (data or {}).items()
        if not _COUNTERPARTY_LINK.search(json.dumps(value, default=str))
    }


@functools.cache
def _environment(folder: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["staff_record"] = staff_record
    env.filters.update(wording.FILTERS)
    return env


def render(
    request: Request | None, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    env = _environment(str(Path(config.templates_folder()) / "pages"))
    # Inside Airflow's frame, Airflow's navigation is the page's: no second header bar.
    framed = request is not None and request.headers.get("sec-fetch-dest") == "iframe"
    # The header's outbox link, for those ``security.navigation`` found may open it.
    operator = request is not None and getattr(request.state, "tempo_operator", False) is True
    html = env.get_template(template).render(
        prefix=URL_PREFIX, framed=framed, theme_script=THEME_SCRIPT, **{"operator": operator, **context}
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def parse_status_filter(value: str | None) -> tuple[TaskStatus, ...]:
    """The inbox's status filter: open and claimed by default; an unknown status is a 422."""
    if not value:
        return ACTIVE_TASK_STATUSES
    try:
        return (TaskStatus(value),)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"errors": {"status_filter": "Unknown status."}}
        ) from None


def person_inbox(session: Session, person: Person, **filters: Any) -> list[Task]:
    """``person``'s own tasks, those of their role and unit queues, and those still held by the
    absent people they stand in for (``inbox_tasks`` filters)."""
    return inbox_tasks(
        session,
        username=person.username,
        roles=directory.roles_of(session, person.username),
        unit=person.unit_code,
        stands_in_for=directory.stood_in_for(session, person.username),
        **filters,
    )


async def read_upload(upload: UploadFile) -> bytes:
    """An uploaded file's content, read up to one byte past Tempo's limit: enough for
    ``attachments.check_upload`` to refuse a bigger file without holding all of it in memory."""
    return await upload.read(MAX_ATTACHMENT_BYTES + 1)


async def form_data(request: Request) -> dict[str, Any]:
    """A posted form as a dict; a field sent several times becomes a list."""
    data: dict[str, Any] = {}
    form = await request.form()
    for key in form:
        values = form.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return data


def load_task(session: Session, task_pk: int) -> Task:
    try:
        return get_task(session, task_pk)
    except TaskNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Task {task_pk} does not exist.") from None


def unconfirmed_destructive(
    session: Session, task: Task, data: dict[str, Any], answers: dict[str, Any]
) -> str | None:
    """The destructive outcome posted without its confirmation (the page then asks for it), once
    its answers would be taken: ``FormErrors`` (a missing reason among them) come first."""
    outcome = str(data.get("outcome") or "")
    if outcome not in destructive_outcomes(task.form_schema) or data.get("confirm") == outcome:
        return None
    actions.check_answers(session, task, answers, outcome)
    return outcome


def client_email_errors(exc: FormErrors) -> dict[str, str]:
    """``required_actions.email_client``'s errors under the names of the client email's form
    (``client_subject``...), apart from the answer form's own fields."""
    return {f"client_{k}" if k in ("subject", "text", "to") else k: v for k, v in exc.errors.items()}


_USERNAME = r"^[A-Za-z0-9_.@\-]{1,150}$"


class AbsenceForm(BaseModel):
    """An absence as the page's form and the API's body give it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    person: str = Field(pattern=_USERNAME, description="who is away (a username)")
    first_day: date = Field(description="the first day away, in the person's calendar")
    last_day: date = Field(description="the last day away (included)")
    deputy: str = Field(pattern=_USERNAME, description="who stands in (a username)")
    scope: list[Annotated[str, Field(pattern=DAG_ID_PATTERN)]] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the templates (dag_ids) it covers; omitted: every process",
    )
    move_tasks: bool = Field(
        default=False,
        description="move the person's open tasks to the deputy when it starts, and back at its end "
        "those nobody touched",
    )

    @classmethod
    def from_page(cls, data: dict[str, Any]) -> AbsenceForm:
        """The absence page's form: the scope as dag_ids separated by commas or spaces (blank: every
        process), the move as a checkbox. ``FormErrors`` by field."""
        raw_scope = str(data.get("scope") or "").replace(",", " ").split()
        values = {
            "person": data.get("person"),
            "first_day": data.get("first_day") or None,
            "last_day": data.get("last_day") or None,
            "deputy": data.get("deputy"),
            "scope": raw_scope or None,
            "move_tasks": data.get("move_tasks") == "on",
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise FormErrors({str(e["loc"][0]): str(e["msg"]) for e in exc.errors()}) from None

    def spec(self) -> AbsenceSpec:
        scope = tuple(dict.fromkeys(self.scope)) if self.scope is not None else None
        return AbsenceSpec(self.person, self.first_day, self.last_day, self.deputy, scope, self.move_tasks)


def visible_absences(session: Session, person: Person | None, *, admin: bool) -> list[Absence]:
    """The absences not over yet that a viewer sees: everyone's for ops and admins; else their own,
    those they stand in for, and those of the people they manage or whose units they head."""
    query = select(Absence).where(Absence.ends_at > utcnow()).order_by(Absence.starts_at, Absence.id)
    if not admin:
        if person is None:
            return []
        managed = set(reports.scope_for(session, person.username, admin=False).people)
        managed |= set(
            session.scalars(select(Person.username).where(Person.manager_username == person.username))
        )
        query = query.where(or_(Absence.username.in_(sorted(managed)), Absence.deputy == person.username))
    return list(session.scalars(query))


@dataclass
class TaskView:
    """Everything a task page shows."""

    task: Task
    process: Process
    form: Form
    history: list[HistoryEvent]
    comments: list[HistoryEvent]
    attachments: list[Attachment]
    #: the labels of the record's keys (``record_labels``)
    labels: dict[str, str]
    #: the titles of the process's tasks by step, for the route map (``step_titles``)
    titles: dict[str, str]
    names: wording.Names
    #: whom the task may be handed to (``handover_choices``)
    people: dict[str, str] = field(default_factory=dict)
    #: the absent person its assignee holds it for
    acting_for: Person | None = None


def step_titles(tasks: list[Task]) -> dict[str, str]:
    """The title each step's task had when it opened (the first, for a step mapped or reopened)."""
    titles: dict[str, str] = {}
    for task in sorted(tasks, key=lambda t: t.created_at):
        titles.setdefault(task.task_id, task.title)
    return titles


def form_labels(form: Form) -> dict[str, str]:
    return {name: spec.label for name, spec in form.fields.items()}


def start_labels(dag_id: str) -> dict[str, str]:
    """The labels of a template's start form; none if its DAG is gone (the keys read in words)."""
    try:
        return form_labels(airflow_data.get_template(dag_id).declared_form)
    except airflow_data.TemplateNotFound:
        return {}


def record_labels(process: Process, tasks: list[Task]) -> dict[str, str]:
    """What a process record's keys are called: the labels of its start form's fields and of its
    tasks' (whose answers steps record), the start form's first."""
    labels: dict[str, str] = {}
    for task in tasks:
        labels.update(form_labels(Form.from_schema(task.form_schema)))
    return {**labels, **start_labels(process.dag_id)}


def task_view(session: Session, task: Task) -> TaskView:
    process = session.get_one(Process, task.process_id)
    events = list(
        session.scalars(
            select(HistoryEvent)
            .where(HistoryEvent.process_id == process.id)
            .order_by(HistoryEvent.at, HistoryEvent.id)
        )
    )
    attachments = list(
        session.scalars(select(Attachment).where(Attachment.process_id == process.id).order_by(Attachment.id))
    )
    tasks = list(session.scalars(select(Task).where(Task.process_id == process.id)))
    return TaskView(
        task=task,
        process=process,
        form=Form.from_schema(task.form_schema),
        history=[e for e in events if e.kind != "comment"],
        comments=[e for e in events if e.kind == "comment"],
        attachments=attachments,
        labels=record_labels(process, tasks),
        titles=step_titles(tasks),
        names=wording.Names(session),
        people=handover_choices(session, task),
        acting_for=session.get(Person, task.acting_for) if task.acting_for else None,
    )


def handover_choices(session: Session, task: Task) -> dict[str, str]:
    """Whom a task may be handed to, username -> how the list names them: the members of its
    queue's role, then of its unit (the queue's, its holder's or its process's), then everyone
    else by name."""
    groups: list[tuple[str, list[Person]]] = []
    if task.candidate_role:
        role = session.get(Role, task.candidate_role)
        groups.append(
            (
                role.name if role else task.candidate_role,
                directory.people_with_role(session, task.candidate_role),
            )
        )
    holder = task.claimed_by or task.assignee
    holder_person = session.get(Person, holder) if holder else None
    unit_code = (
        task.candidate_unit
        or (holder_person.unit_code if holder_person else None)
        or session.get_one(Process, task.process_id).unit_code
    )
    if unit_code:
        unit = session.get(Unit, unit_code)
        groups.append((unit.name if unit else unit_code, directory.people_in_unit(session, unit_code)))
    everyone = session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.name))
    groups.append(("", list(everyone)))
    choices: dict[str, str] = {}
    for group, people in groups:
        for p in people:
            choices.setdefault(p.username, f"{p.name} · {group}" if group else p.name)
    return choices
